"""Bursts travel in chunks (many requests per message); each request stays whole."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from producer.enqueue import Outgoing, build_chunk_message, requests_per_message
from tests.reliability.conftest import (
    Stack,
    batch_when_readable,
    final,
    jobs_by_request,
    manifest,
)
from tests.support.waiting import wait_until
from worker.contracts import QUEUE, Operation, RequestState
from worker.delivery import lanes
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


def items(namespace: str, count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"job_manifest": manifest(), "namespace": namespace, **extra} for _ in range(count)]


def test_small_bursts_spread_over_messages_and_large_ones_share_them() -> None:
    assert requests_per_message(40) == 1
    assert requests_per_message(120) == 4
    assert requests_per_message(480) == 16


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_chunk_loses_and_doubles_nothing(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    env = {"VISIBILITY_TIMEOUT_SECONDS": "4", "WORKER_CONCURRENCY": "2"}
    eksops = stack.client()
    stack.sim.admin.add_fault("latency", ms=150, verb="create", resource="jobs")
    batch = eksops.submit_many(Operation.CREATE_JOB, items(namespace, 120))
    assert lanes.waiting(stack.broker.client()).total == 30  # four requests per message
    first = stack.worker(**env)
    wait_until(lambda: (s := eksops.batch(batch.batch_id)) and s.counts["succeeded"] >= 15)
    first.kill()
    stack.worker(**env)
    status = wait_until(
        lambda: (s := eksops.batch(batch.batch_id)) and s.done and s, timeout=150, interval=0.5
    )
    assert status.counts["succeeded"] == 120
    jobs = jobs_by_request(kube, namespace)
    assert sorted(jobs) == sorted(item.request_id for item in batch.items if item.request_id)
    assert all(len(created) == 1 for created in jobs.values())


@pytest.mark.timeout(120)
def test_duplicates_inside_a_chunk_are_left_to_the_message_that_owns_them(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    known = items(namespace, 60, request_id=None)
    for item in known:
        item["request_id"] = str(uuid.uuid4())
    eksops.submit_many(Operation.CREATE_JOB, known[:30])  # owned by their own messages
    mixed = [item for pair in zip(known[30:], known[:30], strict=True) for item in pair]
    again = eksops.submit_many(Operation.CREATE_JOB, mixed)  # two per message: one new, one not
    assert (again.accepted, again.duplicates) == (30, 30)
    kube.call(kube.core.create_namespace, body={"metadata": {"name": namespace}})
    stack.sim.admin.clear_counters()
    stack.worker()
    for item in known:
        assert final(eksops, item["request_id"]).state is RequestState.SUCCEEDED
    assert stack.sim.admin.count("create", "jobs") == 60  # each request once
    assert all(len(created) == 1 for created in jobs_by_request(kube, namespace).values())
    # Each mixed chunk ran its new request and left the duplicate (to its owning message,
    # or because that one had already ended). Celery logs a chunk's end after its
    # requests' outcomes are stored: the last line may come just after the last outcome.
    tally = "'requests': 2, 'ran': 1, 'succeeded': 1, 'failed': 0"
    wait_until(lambda: stack.logs().count(tally) >= 30, timeout=10)
    assert stack.logs().count(tally) == 30


@pytest.mark.timeout(120)
def test_requests_in_a_chunk_retry_in_place_and_fail_on_their_own(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    kube_items = items(namespace, 58)
    kube_items += [{"job_manifest": manifest("taken"), "namespace": namespace}] * 2
    stack.sim.admin.add_fault("status", code=503, verb="create", resource="jobs", times=3)
    batch = eksops.submit_many(Operation.CREATE_JOB, kube_items)
    status = wait_until(
        lambda: (s := eksops.batch(batch.batch_id)) and s.done and s, timeout=90, interval=0.5
    )
    assert (status.counts["succeeded"], status.counts["failed"]) == (59, 1)
    assert [item.error.code for item in status.failed if item.error] == ["AlreadyExists"]
    retried = [
        item.request_id
        for item in batch.items
        if item.request_id and eksops.status(item.request_id).attempts > 1
    ]
    assert retried
    assert "Attempt 1 of 5 failed: 503 ServiceUnavailable" in stack.logs()


@pytest.mark.timeout(120)
def test_a_request_id_repeated_inside_one_chunk_runs_once(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    rid = str(uuid.uuid4())
    batch = [
        {"job_manifest": manifest("first"), "namespace": namespace, "request_id": rid},
        {"job_manifest": manifest("first"), "namespace": namespace, "request_id": rid},
        {"job_manifest": manifest("second"), "namespace": namespace, "request_id": rid},
        *items(namespace, 57),
    ]
    submission = eksops.submit_many(Operation.CREATE_JOB, batch)  # two per message
    assert submission.items[1].duplicate
    # The same ID with other arguments is not a duplicate: it is refused, by name.
    assert submission.items[2].error is not None
    assert "already used for create_job with other arguments" in submission.items[2].error
    stack.worker()
    status = final(eksops, rid)
    assert status.state is RequestState.SUCCEEDED
    assert status.result is not None
    assert status.result["job_name"] == "first"
    assert status.attempts == 1
    wait_until(lambda: eksops.batch(submission.batch_id).done)
    assert [job["metadata"]["name"] for job in jobs_by_request(kube, namespace)[rid]] == ["first"]


@pytest.mark.timeout(120)
def test_a_malformed_request_fails_alone_and_the_rest_of_its_chunk_runs(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    task = Operation.CREATE_JOB.task_name
    arguments = {"job_manifest": manifest(), "namespace": namespace}
    chunk = [
        Outgoing("not-a-request-id", task, arguments),  # no usable ID: logged and dropped
        Outgoing(bad, task, "not arguments"),  # type: ignore[arg-type]
        Outgoing(good, task, arguments),
        Outgoing(good, task, arguments),  # a repeat: runs once
    ]
    stack.broker.client().lpush(QUEUE, build_chunk_message(eksops.app, str(uuid.uuid4()), chunk))
    worker = stack.worker()
    # Pushed by hand, with no request records: they read unknown until the worker starts them.
    wait_until(lambda: eksops.status(good).state is RequestState.SUCCEEDED, timeout=60)
    failed = final(eksops, bad)
    assert failed.state is RequestState.FAILED
    assert failed.error is not None
    assert failed.error.code == "BadRequest"
    assert "request 2 of chunk" in failed.error.message
    assert "arguments" in failed.error.message
    logs = stack.logs()
    assert "request 1 of chunk" in logs
    assert "no usable request ID and is dropped" in logs
    assert "Request 4 repeats a request ID of this chunk; it runs once" in logs
    assert worker.alive


@pytest.mark.timeout(180)
def test_an_outcome_that_cannot_be_stored_is_stored_later_not_run_again(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    # Deleting a Job that does not exist fails with NotFound; a second attempt would
    # read the 404 as "deleted by an earlier attempt". If storing the first outcome
    # fails, only the store may be repeated.
    stack = make_stack(separate_backend=True)
    assert stack.backend is not None
    eksops = stack.client()
    stack.sim.admin.add_fault("latency", ms=1500, verb="delete", resource="jobs")
    submission = eksops.submit_many(
        Operation.DELETE_JOB,
        [{"job_name": f"never-created-{index}", "namespace": namespace} for index in range(60)],
    )
    stack.worker()
    wait_until(lambda: "START delete_job" in stack.logs())
    stack.backend.stop()  # the deletes in flight answer while the results cannot be written
    time.sleep(25)  # longer than Celery's own retries of a result write (20 x ~1 s)
    stack.backend.start()
    status = wait_until(
        lambda: (s := batch_when_readable(eksops, submission.batch_id)) and s.done and s,
        timeout=120,
        interval=0.5,
    )
    assert (status.counts["succeeded"], status.counts["failed"]) == (0, 60)
    assert {item.error.code for item in status.failed if item.error} == {"NotFound"}
    assert all(
        eksops.status(item.request_id).attempts == 1 for item in submission.items if item.request_id
    )
    assert "Redis unreachable while storing a request's outcome" in stack.logs()
