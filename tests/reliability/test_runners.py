"""Interactive runners: single requests run on the thread that takes them, losing nothing.

A worker process's runners take single requests from the interactive lane and run them
at once, their start riding behind the take; Celery's pool takes what they cannot
(all busy) and what they must not run (an ETA). Killed mid-request, the message comes
back after the visibility timeout and the request ends once. Real worker processes,
real Redis, the shared kubesim.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from producer.queue import make_app
from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.monitor import connection_of, monitored
from tests.support.waiting import wait_until
from worker.contracts import Operation, RequestState
from worker.delivery import lanes
from worker.names import new_request_id
from worker.operations import ClusterClient
from worker.queues import UNACKED
from worker.records import read_record
from worker.settings import QueueSettings

pytestmark = pytest.mark.integration


def received_by(log: str, request_id: str) -> list[str]:
    """Who logged the request's ``received`` line: ``runners`` or Celery's ``strategy``."""
    pattern = rf"\| (\w+) +\| Task eksops\.\w+\[{re.escape(request_id)}\] received"
    return re.findall(pattern, log)


def runner_free(stack: Stack) -> None:
    """Wait until the worker's runner is free again after a request: it acknowledges the
    message, then says it is free. (A request submitted before that goes to the pool,
    which watches the interactive lane while every runner is busy.)"""
    wait_until(lambda: stack.broker.client().hlen(UNACKED) == 0, timeout=10)
    time.sleep(0.3)


@pytest.mark.timeout(90)
def test_a_single_runs_on_a_runner_its_start_riding_behind_the_take(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    worker = stack.worker()
    eksops = stack.client()
    redis = stack.broker.client()
    assert final(eksops, eksops.create_job(manifest("warm-up"), namespace).request_id)
    runner_free(stack)
    with monitored(redis) as commands:
        submission = eksops.create_job(manifest("on-a-runner"), namespace)
        status = final(eksops, submission.request_id)

    assert status.state is RequestState.SUCCEEDED
    assert received_by(worker.log(), submission.request_id) == ["runners"]
    assert f"Task eksops.create_job[{submission.request_id}] succeeded in" in worker.log()
    record = read_record(redis, submission.request_id)
    assert record is not None
    assert record.attempts == 1
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.started_at <= status.finished_at
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1
    wait_until(lambda: redis.hlen(UNACKED) == 0, timeout=5)  # acknowledged

    # The take of the request and, right behind it on the same connection, its start.
    recorded = next(
        i
        for i, c in enumerate(commands)
        if c["command"].startswith("ZADD unacked_index") and submission.request_id in c["command"]
    )
    take = max(
        i
        for i, c in enumerate(commands[:recorded])
        if c["command"].startswith(f"EVALSHA {lanes.TAKE_SHA}")
    )
    connection = connection_of(commands[take])
    behind = next(c["command"] for c in commands[take + 1 :] if connection_of(c) == connection)
    assert behind.startswith("EVALSHA ")
    assert ":note" in behind


@pytest.mark.timeout(90)
def test_when_every_runner_is_busy_the_pool_takes_single_requests_too(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    worker = stack.worker(WORKER_INTERACTIVE_RUNNERS="1", WORKER_CONCURRENCY="4")
    eksops = stack.client()
    assert final(eksops, eksops.create_job(manifest("warm-up"), namespace).request_id)
    stack.sim.admin.add_fault("latency", ms=2500, verb="create", resource="jobs", times=3)
    began = time.monotonic()
    ids = [eksops.create_job(manifest(f"busy-{i}"), namespace).request_id for i in range(3)]
    statuses = [final(eksops, rid) for rid in ids]
    took = time.monotonic() - began
    assert [s.state for s in statuses] == [RequestState.SUCCEEDED] * 3
    assert took < 2 * 2.5  # side by side, not one after the other
    by = sorted(who for rid in ids for who in received_by(worker.log(), rid))
    assert by.count("runners") >= 1
    assert by.count("strategy") >= 1
    assert len(by) == 3


@pytest.mark.timeout(90)
def test_a_message_with_an_eta_is_left_to_celery_which_runs_it_when_due(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    worker = stack.worker()
    app = make_app(QueueSettings(redis_url=stack.broker.url))
    rid = new_request_id()
    sent = time.time()
    app.send_task(
        Operation.GET_JOB_STATUS.task_name,
        kwargs={"job_name": "nowhere", "namespace": "default"},
        task_id=rid,
        countdown=3,
    )

    def stored() -> dict[str, Any] | None:
        meta = app.backend.get_task_meta(rid)
        return meta if meta.get("status") in ("SUCCESS", "FAILURE") else None

    meta = wait_until(stored, timeout=30)
    done = meta["date_done"]  # Celery's ISO time, or a datetime
    done_at = done if isinstance(done, datetime) else datetime.fromisoformat(str(done))
    assert done_at.replace(tzinfo=done_at.tzinfo or UTC).timestamp() >= sent + 3
    assert received_by(worker.log(), rid) == ["strategy"]


@pytest.mark.timeout(120)
def test_a_worker_killed_while_its_runner_calls_the_cluster_loses_and_doubles_nothing(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    env = {"VISIBILITY_TIMEOUT_SECONDS": "4"}
    first = stack.worker(**env)
    eksops = stack.client()
    assert final(eksops, eksops.create_job(manifest("warm-up"), namespace).request_id)
    runner_free(stack)
    stack.sim.admin.add_fault("latency", ms=3000, verb="create", resource="jobs", times=1)
    submission = eksops.create_job(manifest("killed-runner"), namespace)
    wait_until(lambda: received_by(first.log(), submission.request_id) == ["runners"])
    assert eksops.status(submission.request_id).state is RequestState.STARTED
    first.kill()

    second = stack.worker(**env)
    status = final(eksops, submission.request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1
    record = read_record(stack.broker.client(), submission.request_id)
    assert record is not None
    assert record.attempts == 2
    assert received_by(second.log(), submission.request_id)
    wait_until(lambda: stack.broker.client().hlen(UNACKED) == 0, timeout=10)
