"""Polling a request shows its state, outcome and timestamps; unknown IDs are 404."""

from __future__ import annotations

import fakeredis
from fastapi.testclient import TestClient

from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker import errors


def submit_job(client: TestClient) -> str:
    response = client.post("/api/eks-create-job", json={"job_manifest": JOB_MANIFEST})
    assert response.status_code == 202
    rid: str = response.json()["request_id"]
    return rid


def test_a_queued_request_shows_its_submission_time(client: TestClient) -> None:
    rid = submit_job(client)
    body = client.get(f"/api/tasks/{rid}").json()
    assert body["request_id"] == rid
    assert body["state"] == "queued"
    assert body["operation"] == "eksops.create_job"
    assert body["submitted_at"]
    assert (body["result"], body["error"], body["finished_at"]) == (None, None, None)


def test_a_finished_request_shows_the_seed_body_and_when_it_finished(
    client: TestClient, worker: Worker
) -> None:
    rid = submit_job(client)
    worker.succeed(rid, JOB_CREATED)
    body = client.get(f"/api/tasks/{rid}").json()
    assert body["state"] == "succeeded"
    assert body["result"] == JOB_CREATED
    assert body["finished_at"]


def test_a_failed_request_shows_the_structured_error(client: TestClient, worker: Worker) -> None:
    rid = submit_job(client)
    worker.fail(rid, errors.Forbidden("jobs.batch is forbidden", 403, "Forbidden"))
    response = client.get(f"/api/tasks/{rid}")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "failed"
    assert body["error"] == {
        "code": "Forbidden",
        "message": "jobs.batch is forbidden",
        "http_status": 403,
        "retryable": False,
        "details": None,
    }


def test_polling_with_wait_returns_when_the_request_finishes(
    client: TestClient, worker: Worker
) -> None:
    rid = submit_job(client)
    worker.succeed(rid, JOB_CREATED, after=0.2)
    body = client.get(f"/api/tasks/{rid}", params={"wait": 5}).json()
    assert body["state"] == "succeeded"


def test_an_id_never_submitted_is_404_and_writes_nothing(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    rid = new_id()
    response = client.get(f"/api/tasks/{rid}", params={"wait": 1})
    assert response.status_code == 404
    assert response.json() == {
        "detail": f"Request {rid} not found: never submitted, or its result expired",
        "request_id": rid,
    }
    assert redis.dbsize() == 0


def test_an_id_that_is_not_a_uuid_is_422(client: TestClient) -> None:
    response = client.get("/api/tasks/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "Invalid request: request_id: Input should be a valid UUID"
    )


def test_a_poll_with_redis_down_is_503_not_a_crash(
    client: TestClient, redis_server: fakeredis.FakeServer
) -> None:
    redis_server.connected = False
    response = client.get(f"/api/tasks/{new_id()}")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Queue unavailable: ")
    assert "FakeRedis is emulating a connection error" in response.json()["detail"]
    assert response.headers["Retry-After"] == "5"


def test_a_submission_with_redis_down_is_503_not_a_crash(
    client: TestClient, redis_server: fakeredis.FakeServer
) -> None:
    redis_server.connected = False
    response = client.post("/api/eks-create-namespace", json={"namespace_name": "team-a"})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Queue unavailable: ")
    assert response.headers["X-Request-ID"]
