"""Bursts travel in chunks (many requests per message); each request stays whole."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from producer.enqueue import requests_per_message
from tests.reliability.conftest import Stack, final, jobs_by_request, manifest, wait_until
from worker.contracts import QUEUE, Operation, RequestState
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
    assert stack.broker.client().llen(QUEUE) == 30  # four requests per message
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
    # or because that one had already ended).
    assert stack.logs().count("'requests': 2, 'ran': 1}") == 30


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
