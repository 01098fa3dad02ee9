"""``?wait`` answers as the seed did once the worker is done, and 202 when it is not."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker import errors

STATUS_RUNNING = {
    "job_name": "my-job",
    "namespace": "default",
    "state": "running",
    "active": 1,
    "succeeded": 0,
    "failed": 0,
    "start_time": "2026-01-20T10:30:00.123456+00:00",
    "completion_time": None,
}


@pytest.mark.parametrize(
    ("method", "path", "options", "result"),
    [
        ("POST", "/api/eks-create-job", {"json": {"job_manifest": JOB_MANIFEST}}, JOB_CREATED),
        ("GET", "/api/eks-get-job-status", {"params": {"job_name": "my-job"}}, STATUS_RUNNING),
        (
            "DELETE",
            "/api/eks-delete-job",
            {"params": {"job_name": "my-job"}},
            {"message": "Job my-job deleted successfully", "status": "success"},
        ),
        (
            "POST",
            "/api/eks-create-namespace",
            {"json": {"namespace_name": "my-namespace"}},
            {
                "namespace_name": "my-namespace",
                "creation_timestamp": "2026-01-20T10:45:00.123456+00:00",
                "status": "created",
            },
        ),
        (
            "DELETE",
            "/api/eks-delete-namespace",
            {"params": {"namespace_name": "my-namespace"}},
            {"message": "Namespace my-namespace deleted successfully", "status": "success"},
        ),
    ],
)
def test_waiting_answers_200_with_exactly_the_seed_body(
    client: TestClient,
    worker: Worker,
    method: str,
    path: str,
    options: dict[str, Any],
    result: dict[str, Any],
) -> None:
    rid = new_id()
    worker.succeed(rid, result, after=0.2)
    response = client.request(
        method,
        path,
        params={**options.pop("params", {}), "wait": 5},
        headers={"X-Request-ID": rid},
        **options,
    )
    assert response.status_code == 200
    assert response.json() == result
    assert response.headers["X-Request-ID"] == rid


def test_a_missing_job_is_the_seed_404_text(client: TestClient, worker: Worker) -> None:
    rid = new_id()
    worker.fail(
        rid,
        errors.NotFound(
            'jobs.batch "nonexistent-job" not found',
            404,
            "NotFound",
            {"reason": "NotFound", "name": "nonexistent-job", "kind": "jobs"},
        ),
    )
    response = client.get(
        "/api/eks-get-job-status",
        params={"job_name": "nonexistent-job", "namespace": "default", "wait": 5},
        headers={"X-Request-ID": rid},
    )
    assert response.status_code == 404
    body = response.json()
    assert body["detail"] == "Job nonexistent-job not found in namespace default"
    assert body["request_id"] == rid
    assert body["error"]["code"] == "NotFound"
    assert body["error"]["message"] == 'jobs.batch "nonexistent-job" not found'


def test_an_rbac_denial_is_the_seed_500_text(client: TestClient, worker: Worker) -> None:
    rid = new_id()
    worker.fail(
        rid,
        errors.Forbidden(
            'namespaces is forbidden: User "x" cannot create resource "namespaces"',
            403,
            "Forbidden",
            {"reason": "Forbidden", "kind": "namespaces"},
        ),
        after=0.1,
    )
    response = client.post(
        "/api/eks-create-namespace?wait=5",
        json={"namespace_name": "my-ns"},
        headers={"X-Request-ID": rid},
    )
    assert response.status_code == 500
    assert response.json()["detail"] == "Kubernetes API error: Forbidden"


def test_a_wait_that_runs_out_answers_202_to_poll(client: TestClient) -> None:
    started = time.monotonic()
    response = client.post("/api/eks-create-namespace?wait=0.3", json={"namespace_name": "slow"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 202
    assert response.headers["Location"] == response.json()["status_url"]


def test_a_wait_is_cut_to_the_configured_maximum(make_app: Any) -> None:
    with TestClient(make_app(gateway_wait_max_seconds=0.2)) as client:
        started = time.monotonic()
        response = client.post(
            "/api/eks-create-namespace?wait=3600", json={"namespace_name": "slow"}
        )
    assert response.status_code == 202
    assert time.monotonic() - started < 2


def test_a_repeated_request_after_it_finished_answers_its_result(
    client: TestClient, worker: Worker
) -> None:
    rid = new_id()
    first = client.post(
        "/api/eks-create-job", json={"job_manifest": JOB_MANIFEST}, headers={"X-Request-ID": rid}
    )
    assert first.status_code == 202
    worker.succeed(rid, JOB_CREATED)
    again = client.post(
        "/api/eks-create-job?wait=1",
        json={"job_manifest": JOB_MANIFEST},
        headers={"X-Request-ID": rid},
    )
    assert again.status_code == 200
    assert again.json() == JOB_CREATED
