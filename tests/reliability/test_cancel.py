"""Cancel and retry: a cancelled request never runs, wherever its message is; a batch's
cancel splits it exactly into what ran and what never will; failed items retry as a
linked batch."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.waiting import wait_until
from worker.contracts import Operation, RequestState
from worker.delivery import lanes
from worker.errors import Conflict, NotFound, UnknownRequest
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


def items(namespace: str, count: int) -> list[dict[str, Any]]:
    return [{"job_manifest": manifest(), "namespace": namespace} for _ in range(count)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("separate_backend", [False, True], ids=["results-shared", "results-apart"])
def test_a_queued_request_cancelled_never_runs(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str, separate_backend: bool
) -> None:
    stack = make_stack(separate_backend=separate_backend)
    eksops = stack.client()
    doomed = eksops.create_job(manifest(), namespace).request_id
    status = eksops.cancel(doomed)
    assert status.state is RequestState.CANCELLED
    assert status.error is not None
    assert status.error.code == "Cancelled"
    assert status.finished_at is not None
    assert eksops.cancel(doomed).state is RequestState.CANCELLED  # again: harmless
    with pytest.raises(UnknownRequest):
        eksops.cancel(str(uuid.uuid4()))
    stack.worker()
    after = eksops.create_job(manifest(), namespace).request_id
    assert final(eksops, after).state is RequestState.SUCCEEDED  # the worker went past it
    assert eksops.status(doomed).state is RequestState.CANCELLED
    assert doomed not in jobs_by_request(kube, namespace)
    states = [
        e.fields["state"]
        for e in eksops.events(request_id=doomed, after="0", idle_timeout=0.2)
        if e.kind == "request"
    ]
    assert states == ["cancelled"]
    with pytest.raises(Exception, match="cancelled"):
        eksops.result(doomed, 1)


@pytest.mark.timeout(120)
def test_a_running_request_finishes_and_reads_as_it_ended(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.sim.admin.add_fault("latency", ms=1500, verb="create", resource="jobs")
    eksops = stack.client()
    stack.worker()
    rid = eksops.create_job(manifest(), namespace).request_id
    wait_until(lambda: eksops.status(rid).state is RequestState.STARTED)
    assert eksops.cancel(rid).state is RequestState.STARTED
    assert final(eksops, rid).state is RequestState.SUCCEEDED


@pytest.mark.timeout(120)
def test_a_queued_batch_cancelled_leaves_the_lane_and_nothing_runs(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    batch = eksops.submit_many(Operation.CREATE_JOB, items(namespace, 300))
    assert lanes.waiting(stack.broker.client()).bulk[batch.batch_id] > 0
    done = eksops.cancel_batch(batch.batch_id)
    assert (done.cancelled, done.running, done.ended) == (300, 0, 0)
    assert done.dropped_messages > 0
    assert lanes.waiting(stack.broker.client()).total == 0
    status = eksops.batch(batch.batch_id)
    assert status is not None
    assert status.done
    assert status.cancelled_at is not None
    assert status.counts["cancelled"] == 300
    stack.worker()
    after = eksops.create_job(manifest(), namespace).request_id
    assert final(eksops, after).state is RequestState.SUCCEEDED
    assert list(jobs_by_request(kube, namespace)) == [after]
    with pytest.raises(NotFound):
        eksops.cancel_batch(str(uuid.uuid4()))


@pytest.mark.timeout(120)
def test_cancelled_requests_are_revoked_tasks_for_flower(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    batch = eksops.submit_many(Operation.CREATE_JOB, items(namespace, 40))
    revoked: list[str] = []
    listening = threading.Event()

    def listen() -> None:
        with eksops.app.connection_for_read() as connection:
            receiver = eksops.app.events.Receiver(
                connection, handlers={"task-revoked": lambda event: revoked.append(event["uuid"])}
            )
            listening.set()
            with contextlib.suppress(TimeoutError, OSError):
                receiver.capture(limit=40, timeout=10)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert listening.wait(10)
    time.sleep(0.5)  # the receiver's queue is bound once capture starts consuming
    assert eksops.cancel_batch(batch.batch_id).cancelled == 40
    thread.join(15)
    assert sorted(revoked) == sorted(i.request_id for i in batch.items if i.request_id)


@pytest.mark.timeout(180)
def test_a_cancel_racing_workers_splits_the_batch_exactly_and_deletes_what_it_made(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    # 400 creates take 8 threads about 7 s: the cancel lands part-way even on a busy
    # machine, where the batch's status reads come seconds apart.
    stack.sim.admin.add_fault("latency", ms=150, verb="create", resource="jobs")
    eksops = stack.client()
    batch = eksops.submit_many(Operation.CREATE_JOB, items(namespace, 400))
    stack.worker(WORKER_CONCURRENCY="4")
    stack.worker(WORKER_CONCURRENCY="4")
    wait_until(lambda: (s := eksops.batch(batch.batch_id)) and s.counts["succeeded"] >= 30)
    done = eksops.cancel_batch(batch.batch_id, delete_jobs=True)
    assert done.cancelled > 0
    assert done.cancelled + done.running + done.ended == 400
    status = wait_until(lambda: (s := eksops.batch(batch.batch_id)) and s.done and s)
    ran = status.counts["succeeded"]
    assert ran + status.counts["cancelled"] == 400  # nothing lost, nothing half-done
    assert status.counts["cancelled"] == done.cancelled
    assert done.deletion_batch_id is not None
    assert done.jobs_deleting == ran
    deletion = wait_until(
        lambda: (s := eksops.batch(done.deletion_batch_id or "")) and s.done and s, timeout=90
    )
    assert deletion.counts["succeeded"] == ran
    # Deleted in the foreground: each Job goes once its pods have.
    wait_until(lambda: jobs_by_request(kube, namespace) == {}, timeout=60)


@pytest.mark.timeout(180)
def test_a_batchs_failed_items_retry_as_a_linked_batch(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    stack.worker()
    taken = [f"taken-{index}" for index in range(5)]
    first = eksops.submit_many(
        Operation.CREATE_JOB, [{"job_manifest": manifest(n), "namespace": namespace} for n in taken]
    )
    wait_until(lambda: (s := eksops.batch(first.batch_id)) and s.done)
    with pytest.raises(Conflict, match="no failed requests"):
        eksops.retry_failed(first.batch_id)
    clashing = [{"job_manifest": manifest(n), "namespace": namespace} for n in taken]
    batch = eksops.submit_many(Operation.CREATE_JOB, [*clashing, *items(namespace, 20)])
    status = wait_until(lambda: (s := eksops.batch(batch.batch_id)) and s.done and s)
    assert status.counts["failed"] == 5
    for job in taken:
        kube.call(
            kube.batch.delete_namespaced_job,
            name=job,
            namespace=namespace,
            propagation_policy="Background",
        )
    wait_until(lambda: not any(n in taken for n in _job_names(kube, namespace)))
    retry = eksops.retry_failed(batch.batch_id)
    assert retry.accepted == 5
    retried = wait_until(lambda: (s := eksops.batch(retry.batch_id)) and s.done and s)
    assert retried.counts["succeeded"] == 5
    assert retried.retry_of == batch.batch_id
    original = eksops.batch(batch.batch_id)
    assert original is not None
    assert original.retries == [retry.batch_id]
    assert set(taken) <= set(_job_names(kube, namespace))


def _job_names(kube: ClusterClient, namespace: str) -> list[str]:
    listed = kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]
    return [job["metadata"]["name"] for job in listed]
