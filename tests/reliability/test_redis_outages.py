"""Redis going away mid-work: nothing lost, nothing run twice, nothing silently empty."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.reliability.conftest import (
    Stack,
    batch_when_readable,
    final,
    jobs_by_request,
    manifest,
    wait_until,
)
from worker.contracts import Operation, RequestState
from worker.errors import Unavailable
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_a_redis_restart_mid_batch_loses_nothing_and_runs_nothing_twice(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    worker = stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault("latency", ms=60, verb="create", resource="jobs")
    submission = eksops.submit_many(
        Operation.CREATE_JOB,
        [{"job_manifest": manifest(), "namespace": namespace} for _ in range(60)],
    )
    assert submission.accepted == 60

    wait_until(lambda: (s := eksops.batch(submission.batch_id)) and s.counts["succeeded"] >= 10)
    stack.broker.restart(down_for=2.0)

    status = wait_until(
        lambda: (s := batch_when_readable(eksops, submission.batch_id)) and s.done and s,
        timeout=120,
        interval=0.5,
    )
    assert status.counts["succeeded"] == 60
    assert status.counts["failed"] == 0
    jobs = jobs_by_request(kube, namespace)
    assert sorted(jobs) == sorted(item.request_id for item in submission.items if item.request_id)
    assert all(len(created) == 1 for created in jobs.values())
    assert worker.alive


@pytest.mark.timeout(120)
def test_a_result_finished_while_the_backend_is_down_is_stored_once_it_is_back(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack(separate_backend=True)
    stack.worker()
    eksops = stack.client()
    assert stack.backend is not None
    stack.sim.admin.add_fault("latency", ms=2000, verb="create", resource="jobs", times=1)
    submission = eksops.create_job(manifest("during-outage"), namespace)
    wait_until(lambda: eksops.status(submission.request_id).state is RequestState.STARTED)

    stack.backend.stop()
    with pytest.raises(Unavailable, match="Redis is unreachable"):
        eksops.status(submission.request_id)  # never a silent "queued" or empty answer
    wait_until(lambda: jobs_by_request(kube, namespace).get(submission.request_id))
    time.sleep(2)  # the worker finished the create and is retrying the result write
    stack.backend.start()

    status = final(eksops, submission.request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED
    assert status.result is not None
    assert status.result["job_name"] == "during-outage"
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1
