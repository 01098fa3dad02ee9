"""Long-running workers, expiring tokens, late redeliveries and duplicate submissions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.waiting import wait_until
from worker.contracts import RequestState
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_a_worker_keeps_working_across_token_lifetimes(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    # The cluster accepts tokens for 3 s (15 min on EKS); the worker re-mints after 2 s.
    stack = make_stack()
    stack.sim.admin.configure(token_max_age=3)
    stack.worker(TOKEN_REFRESH_SECONDS="2")
    eksops = stack.client()
    stack.sim.admin.clear_counters()
    for index in range(8):
        status = final(eksops, eksops.create_namespace(f"{namespace}-{index}").request_id)
        assert status.state is RequestState.SUCCEEDED
        time.sleep(1.0)
    assert stack.sim.admin.count("*", "*", 401) == 0
    assert stack.logs().count("Generated IAM bearer token") >= 3


@pytest.mark.timeout(90)
def test_an_unexpected_401_remints_the_token_once_and_the_request_succeeds(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    final(eksops, eksops.create_namespace(namespace).request_id)
    stack.sim.admin.revoke_tokens()
    status = final(eksops, eksops.get_job_status("absent", namespace).request_id)
    assert status.error is not None
    assert status.error.code == "NotFound"  # it reached the API again after the re-mint
    assert status.attempts == 1
    assert (
        "Kubernetes API answered 401 Unauthorized; re-minting the IAM token and retrying once"
        in stack.logs()
    )


@pytest.mark.timeout(90)
def test_a_cluster_rejecting_every_token_fails_the_request_as_unauthorized(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    final(eksops, eksops.create_namespace(namespace).request_id)
    stack.sim.admin.reject_all_tokens()
    stack.sim.admin.clear_counters()
    status = final(eksops, eksops.get_job_status("absent", namespace).request_id)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status) == ("Unauthorized", 401)
    assert status.attempts == 1
    assert stack.sim.admin.count("get", "jobs", 401) == 2


@pytest.mark.timeout(120)
def test_a_task_outliving_the_visibility_timeout_runs_once(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    env = {"VISIBILITY_TIMEOUT_SECONDS": "3"}
    stack.worker(**env)
    stack.worker(**env)
    eksops = stack.client()
    kube.call(
        kube.core.create_namespace, body={"metadata": {"name": namespace}}
    )  # one create call, no auto-create
    stack.sim.admin.add_fault("latency", ms=8000, verb="create", resource="jobs", times=1)
    stack.sim.admin.clear_counters()
    submission = eksops.create_job(manifest("long-runner"), namespace)
    status = final(eksops, submission.request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1
    assert (
        stack.sim.admin.count("create", "jobs") == 1
    )  # the redelivery waited, it did not call again
    assert "Another worker is running this request; waiting for it to finish" in stack.logs()
    # The waiting copy polls the lease every 0.5 s, then answers from the stored result.
    wait_until(lambda: "Request already ended (SUCCESS); not running it again" in stack.logs())
    assert stack.sim.admin.count("create", "jobs") == 1


@pytest.mark.timeout(90)
def test_the_same_request_id_submitted_concurrently_makes_one_task_and_one_job(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    stack.worker()
    eksops = stack.client()
    rid = str(uuid.uuid4())
    with ThreadPoolExecutor(16) as pool:
        submissions = list(
            pool.map(lambda _: eksops.create_job(manifest(), namespace, request_id=rid), range(16))
        )
    assert sum(not s.duplicate for s in submissions) == 1
    results = {str(final(eksops, rid).result) for _ in range(3)}
    assert len(results) == 1
    wait_until(lambda: jobs_by_request(kube, namespace).get(rid))
    assert len(jobs_by_request(kube, namespace)[rid]) == 1
    assert stack.logs().count(f"create_job[{rid}] received") == 1
