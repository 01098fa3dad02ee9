"""Workers that die or stop mid-task lose nothing and double nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.waiting import wait_until
from worker.contracts import RequestState
from worker.operations import ClusterClient
from worker.records import read_record

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_a_worker_killed_after_the_create_but_before_the_ack_is_redelivered_and_adopts_its_job(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack(separate_backend=True)
    env = {"VISIBILITY_TIMEOUT_SECONDS": "4"}
    first = stack.worker(**env)
    eksops = stack.client()
    assert stack.backend is not None
    # Reads still answer, writes block: the worker creates the Job, then hangs storing
    # its result, so the message is never acked. That is the window we kill it in.
    stack.backend.pause_writes(60)
    submission = eksops.create_job(manifest("crash-job"), namespace)
    created = wait_until(
        lambda: jobs_by_request(kube, namespace).get(submission.request_id), timeout=30
    )
    uid = created[0]["metadata"]["uid"]
    time.sleep(0.3)
    first.kill()
    stack.backend.unpause()

    second = stack.worker(**env)
    status = final(eksops, submission.request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED
    assert status.result is not None
    assert status.result["job_name"] == "crash-job"
    jobs = jobs_by_request(kube, namespace)
    assert [job["metadata"]["uid"] for job in jobs[submission.request_id]] == [uid]
    assert len(jobs) == 1
    assert read_record(stack.broker.client(), submission.request_id).attempts == 2
    assert "was created by an earlier attempt of this request; reusing it" in second.log()


@pytest.mark.timeout(120)
def test_sigterm_mid_task_lets_the_task_finish_before_the_worker_exits(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    worker = stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault("latency", ms=3000, verb="create", resource="jobs", times=1)
    submission = eksops.create_job(manifest("slow-job"), namespace)
    wait_until(lambda: eksops.status(submission.request_id).state is RequestState.STARTED)
    worker.signal(signal.SIGTERM)
    assert worker.process is not None
    assert worker.process.wait(30) == 0
    status = eksops.status(submission.request_id)
    assert status.state is RequestState.SUCCEEDED
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1
    assert "Warm shutdown" in worker.log()
