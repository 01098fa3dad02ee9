"""Control over HTTP: cancel a request or a batch, retry a batch's failures, and the
seed's synchronous answers by default (GATEWAY_DEFAULT_WAIT_SECONDS)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import fakeredis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker.delivery import lanes
from worker.errors import Conflict
from worker.records import record_key


def job(namespace: str = "batch") -> dict[str, Any]:
    return {"job_manifest": copy.deepcopy(JOB_MANIFEST), "namespace": namespace}


def test_a_queued_request_is_cancelled_and_reads_cancelled(client: TestClient) -> None:
    rid = client.post("/api/eks-create-job", json=job()).json()["request_id"]
    answer = client.delete(f"/api/tasks/{rid}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["state"] == "cancelled"
    assert body["error"]["code"] == "Cancelled"
    assert client.get(f"/api/tasks/{rid}").json()["state"] == "cancelled"


def test_an_ended_request_is_left_as_it_ended(client: TestClient, worker: Worker) -> None:
    rid = client.post("/api/eks-create-job", json=job()).json()["request_id"]
    worker.succeed(rid, JOB_CREATED)
    assert client.delete(f"/api/tasks/{rid}").json()["state"] == "succeeded"


def test_cancelling_an_unknown_request_or_batch_is_a_404(client: TestClient) -> None:
    missing = new_id()
    answer = client.delete(f"/api/tasks/{missing}")
    assert answer.status_code == 404
    assert missing in answer.json()["detail"]
    answer = client.delete(f"/api/batches/{missing}")
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"Batch {missing} is unknown: never submitted, or it expired"


def test_a_batch_cancelled_leaves_the_lane_and_counts_cancelled(
    client: TestClient, redis: fakeredis.FakeRedis, worker: Worker
) -> None:
    body = client.post("/api/eks-create-jobs", json={"jobs": [job() for _ in range(5)]}).json()
    worker.succeed(body["items"][0]["request_id"], JOB_CREATED)
    answer = client.delete(f"/api/batches/{body['batch_id']}")
    assert answer.status_code == 200
    done = answer.json()
    assert (done["cancelled"], done["ended"], done["running"]) == (4, 1, 0)
    assert done["dropped_messages"] >= 1
    assert lanes.waiting(redis).total == 0
    status = client.get(body["status_url"]).json()
    assert status["counts"]["cancelled"] == 4
    assert status["counts"]["succeeded"] == 1
    assert status["done"] is True
    assert status["cancelled_at"] is not None


def test_retrying_a_batch_resubmits_its_failures_as_a_linked_batch(
    client: TestClient, redis: fakeredis.FakeRedis, worker: Worker
) -> None:
    body = client.post("/api/eks-create-jobs", json={"jobs": [job(), job("other")]}).json()
    first, second = (item["request_id"] for item in body["items"])
    worker.succeed(first, JOB_CREATED)
    answer = client.post(f"/api/batches/{body['batch_id']}/retry-failed")
    assert answer.status_code == 409
    assert "no failed requests to retry" in answer.json()["detail"]
    # As the worker leaves a failed request: its outcome, and its arguments.
    worker.fail(second, Conflict('jobs.batch "my-job" already exists', 409, "AlreadyExists"))
    redis.hset(record_key(second), "arguments", json.dumps(job("other")))
    answer = client.post(f"/api/batches/{body['batch_id']}/retry-failed?priority=3")
    assert answer.status_code == 202
    retry = answer.json()
    assert retry["accepted"] == 1
    assert retry["batch_id"] != body["batch_id"]
    assert lanes.waiting(redis).bulk[retry["batch_id"]] == 1
    assert client.get(retry["status_url"]).json()["retry_of"] == body["batch_id"]
    assert client.get(body["status_url"]).json()["retries"] == [retry["batch_id"]]
    assert client.post(f"/api/batches/{new_id()}/retry-failed").status_code == 404
    assert (
        client.post(f"/api/batches/{body['batch_id']}/retry-failed?priority=11").status_code == 422
    )


def test_a_default_wait_makes_the_seed_endpoints_answer_as_the_seed_did(
    make_app: Callable[..., FastAPI], worker: Worker
) -> None:
    with TestClient(make_app(gateway_default_wait_seconds=2.0)) as client:
        rid = new_id()
        worker.succeed(rid, JOB_CREATED, after=0.2)
        answer = client.post("/api/eks-create-job", json=job(), headers={"X-Request-ID": rid})
        assert answer.status_code == 200
        assert answer.json() == JOB_CREATED
        started = time.monotonic()
        answer = client.post("/api/eks-create-job?wait=0.2", json=job())
        assert answer.status_code == 202  # the caller's own wait still rules
        assert time.monotonic() - started < 1.5


def test_cancelled_requests_are_counted_as_ended_by_lane(client: TestClient) -> None:
    def cancelled(lane: str) -> float:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "eksops_requests_ended_total" and sample.labels == {
                    "operation": "create_job",
                    "lane": lane,
                    "outcome": "cancelled",
                }:
                    return sample.value
        return 0.0

    before = (cancelled("interactive"), cancelled("bulk"))
    single = client.post("/api/eks-create-job", json=job()).json()["request_id"]
    batch = client.post("/api/eks-create-jobs", json={"jobs": [job(), job(), job()]}).json()
    assert client.delete(f"/api/tasks/{single}").status_code == 200
    assert client.delete(f"/api/batches/{batch['batch_id']}").status_code == 200
    assert client.delete(f"/api/tasks/{single}").status_code == 200  # already: not again
    after = (cancelled("interactive"), cancelled("bulk"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 3)
