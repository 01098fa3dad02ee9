"""Each seed endpoint validates, enqueues once and answers 202 with where to poll."""

from __future__ import annotations

import uuid
from typing import Any

import fakeredis
import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import JOB_MANIFEST, new_id
from worker.contracts import RequestState
from worker.delivery import lanes

SEED_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "POST",
        "/api/eks-create-job",
        {"json": {"job_manifest": JOB_MANIFEST, "namespace": "default"}},
    ),
    ("GET", "/api/eks-get-job-status", {"params": {"job_name": "my-job", "namespace": "default"}}),
    ("DELETE", "/api/eks-delete-job", {"params": {"job_name": "my-job", "namespace": "default"}}),
    ("POST", "/api/eks-create-namespace", {"json": {"namespace_name": "my-namespace"}}),
    ("DELETE", "/api/eks-delete-namespace", {"params": {"namespace_name": "my-namespace"}}),
]
OPERATIONS = ["create_job", "get_job_status", "delete_job", "create_namespace", "delete_namespace"]


@pytest.mark.parametrize(("call", "operation"), list(zip(SEED_CALLS, OPERATIONS, strict=True)))
def test_every_seed_endpoint_answers_202_with_a_status_url_and_enqueues_once(
    client: TestClient,
    redis: fakeredis.FakeRedis,
    call: tuple[str, str, dict[str, Any]],
    operation: str,
) -> None:
    method, path, options = call
    response = client.request(method, path, **options)
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"request_id", "status_url"}
    assert uuid.UUID(body["request_id"])
    assert body["status_url"] == f"/api/tasks/{body['request_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert lanes.waiting(redis).total == 1

    polled = client.get(body["status_url"]).json()
    assert polled["state"] == RequestState.QUEUED
    assert polled["operation"] == f"eksops.{operation}"


def test_the_callers_request_id_becomes_the_request_id_in_canonical_form(
    client: TestClient,
) -> None:
    rid = new_id()
    response = client.post(
        "/api/eks-create-namespace",
        json={"namespace_name": "team-a"},
        headers={"X-Request-ID": rid.upper()},
    )
    assert response.json()["request_id"] == rid
    assert response.headers["X-Request-ID"] == rid


def test_the_same_request_id_twice_enqueues_one_task(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    rid = new_id()
    answers = [
        client.post(
            "/api/eks-create-namespace",
            json={"namespace_name": "team-a"},
            headers={"X-Request-ID": rid},
        )
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert lanes.waiting(redis).total == 1


def test_a_request_id_reused_for_another_operation_is_a_conflict(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    rid = new_id()
    client.post(
        "/api/eks-create-namespace",
        json={"namespace_name": "team-a"},
        headers={"X-Request-ID": rid},
    )
    response = client.delete(
        "/api/eks-delete-namespace",
        params={"namespace_name": "team-a"},
        headers={"X-Request-ID": rid},
    )
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Request ID {rid} was already used for create_namespace with other arguments; "
        "use a new request ID for a different request"
    )
    assert response.json()["error"]["code"] == "RequestIdReused"
    assert lanes.waiting(redis).total == 1


def test_a_request_id_reused_with_other_arguments_is_a_conflict_and_the_same_is_a_duplicate(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    rid = new_id()
    headers = {"X-Request-ID": rid}
    first = client.post("/api/eks-create-namespace", json={"namespace_name": "a"}, headers=headers)
    again = client.post("/api/eks-create-namespace", json={"namespace_name": "a"}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["request_id"] == rid
    other = client.post("/api/eks-create-namespace", json={"namespace_name": "b"}, headers=headers)
    assert other.status_code == 409
    assert "already used for create_namespace with other arguments" in other.json()["detail"]
    assert lanes.waiting(redis).total == 1


def test_a_request_id_that_is_not_a_uuid_is_refused_and_nothing_is_written(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    response = client.post(
        "/api/eks-create-namespace",
        json={"namespace_name": "team-a"},
        headers={"X-Request-ID": "abc"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "Invalid X-Request-ID header: request ID 'abc' is not a UUID"
    )
    assert uuid.UUID(response.headers["X-Request-ID"])
    assert redis.dbsize() == 0


@pytest.mark.parametrize(
    ("method", "path", "options", "detail"),
    [
        (
            "POST",
            "/api/eks-create-job",
            {"json": {"namespace": "default"}},
            "Invalid create_job request: job_manifest: required field is missing",
        ),
        (
            "POST",
            "/api/eks-create-job",
            {"json": {"job_manifest": {"spec": {"template": {}}}}},
            "job_manifest.spec.template.spec",
        ),
        (
            "POST",
            "/api/eks-create-job",
            {"json": {"job_manifest": JOB_MANIFEST, "namespace": "Team_A"}},
            "namespace 'Team_A' is not a valid name",
        ),
        (
            "POST",
            "/api/eks-create-job",
            {"json": {"job_manifest": JOB_MANIFEST, "force": True}},
            "force: unknown field (not part of the contract)",
        ),
        (
            "GET",
            "/api/eks-get-job-status",
            {"params": {"job_name": "x" * 64}},
            "job_name 'xxxxxxxx",
        ),
        (
            "GET",
            "/api/eks-get-job-status",
            {},
            "Invalid request: job_name: required field is missing",
        ),
        (
            "DELETE",
            "/api/eks-delete-job",
            {"params": {"job_name": "My_Job"}},
            "job_name 'My_Job' is not a valid name",
        ),
        (
            "POST",
            "/api/eks-create-namespace",
            {"json": {"namespace_name": ""}},
            "namespace_name must not be empty",
        ),
        (
            "DELETE",
            "/api/eks-delete-namespace",
            {"params": {"namespace_name": "kube-system"}},
            "namespace 'kube-system' is protected",
        ),
        (
            "GET",
            "/api/eks-get-job-status",
            {"params": {"job_name": "a", "wait": "-1"}},
            "Invalid request: wait: Input should be greater than or equal to 0",
        ),
        (
            "POST",
            "/api/eks-create-namespace",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            "Invalid request body: not valid JSON",
        ),
        (
            "POST",
            "/api/eks-create-namespace",
            {"json": ["my-namespace"]},
            "Invalid request body: expected a JSON object, got list",
        ),
        ("POST", "/api/eks-create-namespace", {}, "expected a JSON object, got NoneType"),
        (
            "POST",
            "/api/eks-create-namespace",
            {"content": b"[" * 100_000 + b"]" * 100_000},
            "Invalid request body: JSON nested too deeply",
        ),
        (
            "POST",
            "/api/eks-create-job",
            {"content": b'{"job_manifest": {"spec": ' + b'{"a": ' * 800 + b"{}" + b"}" * 802},
            "job_manifest: Recursion limit reached",
        ),
    ],
)
def test_invalid_input_is_a_422_naming_the_field_and_nothing_is_written(
    client: TestClient,
    redis: fakeredis.FakeRedis,
    method: str,
    path: str,
    options: dict[str, Any],
    detail: str,
) -> None:
    response = client.request(method, path, **options)
    assert response.status_code == 422
    assert set(response.json()) == {"detail"}
    assert detail in response.json()["detail"]
    assert redis.dbsize() == 0


def test_a_body_declared_above_the_limit_is_refused_before_it_is_read(
    make_app: Any, redis: fakeredis.FakeRedis
) -> None:
    with TestClient(make_app(gateway_max_body_bytes=2048)) as client:
        big = {"job_manifest": {**JOB_MANIFEST, "metadata": {"annotations": {"a": "x" * 4096}}}}
        response = client.post("/api/eks-create-job", json=big)
    assert response.status_code == 413
    assert response.json()["detail"].endswith(
        "bytes; the limit is 2048 bytes (GATEWAY_MAX_BODY_BYTES)"
    )
    assert uuid.UUID(response.headers["X-Request-ID"])
    assert redis.dbsize() == 0


def test_a_chunked_body_above_the_limit_is_refused_while_it_is_read(
    make_app: Any, redis: fakeredis.FakeRedis
) -> None:
    def chunks() -> Any:
        yield b'{"namespace_name": "'
        for _ in range(10):
            yield b"a" * 512
        yield b'"}'

    with TestClient(make_app(gateway_max_body_bytes=2048)) as client:
        response = client.post("/api/eks-create-namespace", content=chunks())
    assert response.status_code == 413
    assert "the limit is 2048 bytes" in response.json()["detail"]
    assert redis.dbsize() == 0


def test_a_manifest_above_the_manifest_limit_is_refused_by_the_contract(
    make_app: Any, redis: fakeredis.FakeRedis
) -> None:
    with TestClient(make_app(max_manifest_bytes=1024)) as client:
        big = {"job_manifest": {**JOB_MANIFEST, "metadata": {"annotations": {"a": "x" * 2000}}}}
        response = client.post("/api/eks-create-job", json=big)
    assert response.status_code == 422
    assert "the limit is 1024 bytes" in response.json()["detail"]
    assert redis.dbsize() == 0


def test_every_response_carries_a_request_id_even_an_unknown_path(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert uuid.UUID(response.headers["X-Request-ID"])
