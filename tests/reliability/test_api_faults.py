"""Kubernetes API faults: throttling honoured fleet-wide, 5xx retried and bounded, 4xx not."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.reliability.conftest import Stack, final, manifest
from tests.support.waiting import wait_until
from worker.contracts import RequestState
from worker.records import lease_key, read_record

pytestmark = pytest.mark.integration


def attempts_span(stack: Stack, request_id: str) -> float:
    record = read_record(stack.broker.client(), request_id)
    assert record is not None
    assert record.started_at
    assert record.last_started_at
    first, last = (datetime.fromisoformat(t) for t in (record.started_at, record.last_started_at))
    return (last - first).total_seconds()


@pytest.mark.timeout(90)
def test_a_429_is_retried_after_its_retry_after_and_the_poller_sees_it_retrying(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault(
        "status", code=429, retry_after=2, verb="create", resource="jobs", times=1
    )
    submission = eksops.create_job(manifest(), namespace)
    retrying = wait_until(
        lambda: (s := eksops.status(submission.request_id)).state is RequestState.RETRYING and s
    )
    assert retrying.error is not None
    assert (retrying.error.code, retrying.error.http_status) == ("TooManyRequests", 429)
    status = final(eksops, submission.request_id)
    assert status.state is RequestState.SUCCEEDED
    assert status.attempts == 2
    assert attempts_span(stack, submission.request_id) >= 2.0
    assert re.search(
        r"WARNING .* Attempt 1 of 5 failed: 429 TooManyRequests: .*retrying in [2-9]\.\d+s",
        stack.logs(),
    )


@pytest.mark.timeout(90)
def test_a_429_pauses_every_worker_not_just_the_one_that_saw_it(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    limits = {"K8S_RATE_LIMIT_QPS": "500", "K8S_RATE_LIMIT_BURST": "500", "K8S_MAX_IN_FLIGHT": "16"}
    stack.worker(**limits)
    stack.worker(**limits)
    eksops = stack.client()
    stack.sim.admin.add_fault(
        "status", code=429, retry_after=3, verb="get", resource="jobs", times=1
    )
    first = eksops.get_job_status("absent", namespace)
    wait_until(lambda: eksops.status(first.request_id).state is RequestState.RETRYING)
    stack.sim.admin.clear_counters()
    others = [eksops.get_job_status("absent", namespace) for _ in range(8)]
    time.sleep(1.5)
    assert stack.sim.admin.count("get", "jobs") == 0  # both workers hold back
    for submission in [first, *others]:
        status = final(eksops, submission.request_id)
        assert status.error is not None
        assert status.error.code == "NotFound"
    assert "all workers pause for 3.00s" in stack.logs()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff_and_then_succeed(
    make_stack: Callable[..., Stack], namespace: str, code: int
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault("status", code=code, verb="create", resource="namespaces", times=2)
    status = final(eksops, eksops.create_namespace(namespace).request_id)
    assert status.state is RequestState.SUCCEEDED
    assert status.attempts == 3
    assert stack.sim.admin.count("create", "namespaces") == 3


@pytest.mark.timeout(90)
def test_a_connection_reset_is_retried(make_stack: Callable[..., Stack], namespace: str) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault("drop", verb="create", resource="namespaces", times=1)
    status = final(eksops, eksops.create_namespace(namespace).request_id)
    assert status.state is RequestState.SUCCEEDED
    assert status.attempts == 2


@pytest.mark.timeout(90)
def test_a_server_error_that_persists_fails_after_the_bounded_attempts(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker(RETRY_MAX_ATTEMPTS="3")
    eksops = stack.client()
    stack.sim.admin.add_fault("status", code=503, verb="create", resource="namespaces")
    status = final(eksops, eksops.create_namespace(namespace).request_id)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status, status.error.retryable) == (
        "ServiceUnavailable",
        503,
        True,
    )
    assert status.attempts == 3
    assert stack.sim.admin.count("create", "namespaces") == 3
    assert "failed after 3 attempts, giving up: 503" in stack.logs()


@pytest.mark.timeout(90)
def test_client_errors_are_never_retried(make_stack: Callable[..., Stack], namespace: str) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    final(eksops, eksops.create_job(manifest("taken"), namespace).request_id)
    invalid = manifest("negative")
    invalid["spec"]["backoffLimit"] = -1
    stack.sim.admin.deny(verb="delete", resource="jobs")
    cases = {
        404: eksops.get_job_status("absent", namespace),
        409: eksops.create_job(manifest("taken"), namespace),
        422: eksops.create_job(invalid, namespace),
        403: eksops.delete_job("taken", namespace),
        400: eksops.create_namespace(f"ns-{uuid.uuid4().hex[:6]}", cluster=None),
    }
    del cases[400]  # 400s never leave the producer: invalid requests are refused there
    for code, submission in cases.items():
        status = final(eksops, submission.request_id)
        assert status.state is RequestState.FAILED, code
        assert status.error is not None
        assert status.error.http_status == code
        assert status.attempts == 1, code


@pytest.mark.timeout(90)
def test_a_request_waiting_for_another_workers_lease_holds_no_limiter_slot(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker(K8S_RATE_LIMIT_QPS="100", K8S_RATE_LIMIT_BURST="100", K8S_MAX_IN_FLIGHT="1")
    eksops = stack.client()
    warm = eksops.get_job_status("absent", namespace)  # the worker builds its cluster client
    assert final(eksops, warm.request_id).state is RequestState.FAILED
    # A redelivery of a request still running elsewhere: its start finds the lease held.
    running_elsewhere = str(uuid.uuid4())
    stack.broker.client().set(lease_key(running_elsewhere), "another-worker", px=60_000)
    eksops.get_job_status("absent", namespace, request_id=running_elsewhere)
    wait_until(lambda: "waiting for it to finish" in stack.logs())
    # The fleet's only in-flight slot is not kept by the one waiting: another request runs.
    other = eksops.get_job_status("absent", namespace)
    status = final(eksops, other.request_id, timeout=15)
    assert status.error is not None
    assert status.error.code == "NotFound"
    stack.broker.client().delete(lease_key(running_elsewhere))
    assert final(eksops, running_elsewhere).error is not None
