"""Bulk submission over HTTP: one body, many Jobs, one batch to poll."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import fakeredis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer.batches import BatchInterrupted, BatchItem, BatchSubmission
from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker.delivery import lanes
from worker.errors import Conflict


def job(namespace: str = "batch", **extra: Any) -> dict[str, Any]:
    return {"job_manifest": copy.deepcopy(JOB_MANIFEST), "namespace": namespace, **extra}


def test_a_bulk_submit_enqueues_each_good_item_and_reports_bad_ones_by_index(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    bad = job()
    bad["job_manifest"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    answer = client.post(
        "/api/eks-create-jobs", json={"jobs": [job(), bad, job(namespace="Bad_NS"), job()]}
    )
    assert answer.status_code == 202
    body = answer.json()
    assert answer.headers["Location"] == body["status_url"] == f"/api/batches/{body['batch_id']}"
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 2)
    assert [item["index"] for item in body["items"]] == [0, 1, 2, 3]
    assert "restartPolicy" in body["items"][1]["error"]
    assert "Bad_NS" in body["items"][2]["error"]
    assert body["items"][0]["status_url"] == f"/api/tasks/{body['items'][0]['request_id']}"
    assert lanes.waiting(redis).total == 2


def test_a_batch_is_polled_for_counts_and_failed_items(client: TestClient, worker: Worker) -> None:
    body = client.post("/api/eks-create-jobs", json={"jobs": [job(), job(), job()]}).json()
    first, second, third = (item["request_id"] for item in body["items"])
    worker.succeed(first, JOB_CREATED)
    worker.fail(second, Conflict('jobs.batch "my-job" already exists', 409, "AlreadyExists"))
    status = client.get(body["status_url"]).json()
    assert status["total"] == 3
    assert (
        status["counts"]["succeeded"],
        status["counts"]["failed"],
        status["counts"]["queued"],
    ) == (1, 1, 1)
    assert status["done"] is False
    assert [item["request_id"] for item in status["failed"]] == [second]
    assert status["failed"][0]["error"]["code"] == "AlreadyExists"
    assert client.get(f"/api/tasks/{third}").json()["state"] == "queued"


def test_a_batch_lists_as_many_failed_items_as_asked(client: TestClient, worker: Worker) -> None:
    body = client.post("/api/eks-create-jobs", json={"jobs": [job() for _ in range(4)]}).json()
    rids = [item["request_id"] for item in body["items"]]
    for rid in rids[1:]:
        worker.fail(rid, Conflict(f'jobs.batch "{rid}" already exists', 409, "AlreadyExists"))
    listed = client.get(body["status_url"], params={"failed_limit": 2}).json()
    assert listed["counts"]["failed"] == 3  # the total
    assert [item["request_id"] for item in listed["failed"]] == rids[1:3]
    assert client.get(body["status_url"], params={"failed_limit": 0}).json()["failed"] == []
    too_many = client.get(body["status_url"], params={"failed_limit": 10_001})
    assert too_many.status_code == 422
    assert "failed_limit" in too_many.text


def test_items_with_their_own_request_ids_are_not_enqueued_twice(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    jobs = [job(request_id=new_id()) for _ in range(3)]
    first = client.post("/api/eks-create-jobs", json={"jobs": jobs}).json()
    again = client.post("/api/eks-create-jobs", json={"jobs": jobs, "batch_id": first["batch_id"]})
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)
    assert lanes.waiting(redis).total == 3


def test_a_batch_with_no_valid_item_is_a_422_and_writes_nothing(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    answer = client.post("/api/eks-create-jobs", json={"jobs": [{"job_manifest": {"spec": {}}}]})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "No job in the batch was valid"
    assert answer.json()["items"][0]["error"]
    assert lanes.waiting(redis).total == 0


def test_malformed_bulk_bodies_are_refused_naming_the_problem(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    for body, problem in (
        ({"jobs": []}, "jobs must be a non-empty list"),
        ({"jobs": "x"}, "jobs must be a non-empty list"),
        ({"jobs": [job()], "priority": 1}, "unknown field(s) ['priority']"),
    ):
        answer = client.post("/api/eks-create-jobs", json=body)
        assert answer.status_code == 422, body
        assert problem in answer.json()["detail"]
    assert redis.dbsize() == 0


def test_bulk_bodies_have_their_own_size_and_count_limits(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(
        make_app(
            gateway_max_body_bytes=1024, gateway_max_bulk_bytes=64 * 1024, gateway_max_bulk_items=20
        )
    ) as client:
        ten = {"jobs": [job() for _ in range(10)]}
        assert len(json.dumps(ten)) > 1024
        assert client.post("/api/eks-create-jobs", json=ten).status_code == 202
        assert (
            client.post("/api/eks-create-job", json={**job(), "pad": "x" * 3000}).status_code == 413
        )
        too_many = client.post("/api/eks-create-jobs", json={"jobs": [job() for _ in range(21)]})
        assert too_many.status_code == 422
        assert "the limit is 20" in too_many.json()["detail"]


def test_an_unknown_batch_is_a_404(client: TestClient) -> None:
    answer = client.get(f"/api/batches/{new_id()}")
    assert answer.status_code == 404
    assert "never submitted" in answer.json()["detail"]


def test_an_interrupted_bulk_submit_answers_503_with_the_request_ids_it_gave(
    make_app: Callable[..., FastAPI],
) -> None:
    # Redis failing between two parts of a bulk submit: the items already enqueued run,
    # and the caller must learn their request IDs, or a retry would enqueue them again.
    app = make_app()
    submission = BatchSubmission(
        batch_id=new_id(),
        operation="create_job",
        accepted=1,
        duplicates=0,
        rejected=0,
        items=[
            BatchItem(index=0, request_id=new_id()),
            BatchItem(index=1, request_id=new_id(), error="not enqueued: Redis failed"),
        ],
    )

    def interrupted() -> None:
        raise BatchInterrupted("Bulk submit interrupted: connection lost", submission)

    app.add_api_route("/interrupted", interrupted, methods=["POST"])
    with TestClient(app) as client:
        answer = client.post("/interrupted")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    body = answer.json()
    assert body["detail"] == "Queue unavailable: Bulk submit interrupted: connection lost"
    assert body["submission"]["batch_id"] == submission.batch_id
    assert [item["request_id"] for item in body["submission"]["items"]] == [
        item.request_id for item in submission.items
    ]


def test_a_large_bulk_body_is_parsed_and_answered_off_the_event_loop(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    jobs = [job() for _ in range(600)]
    for index, item in enumerate(jobs):
        item["job_manifest"]["metadata"] = {"annotations": {"note": f"{index:04d}" + "x" * 500}}
    payload = json.dumps({"jobs": jobs})
    assert len(payload) > 256 * 1024  # read_json parses it in a worker thread
    answer = client.post(
        "/api/eks-create-jobs", content=payload, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 600
    assert lanes.waiting(redis).total > 0
