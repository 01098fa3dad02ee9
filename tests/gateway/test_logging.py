"""The gateway logs the seed's route lines, each tagged with the request ID."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker import errors
from worker.logs import SeedFormatter, short_id


@pytest.fixture
def seed_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture lines formatted as they are emitted (the request tag is bound then)."""
    caplog.handler.setFormatter(SeedFormatter())
    with caplog.at_level(logging.DEBUG):
        yield caplog


def lines_of(caplog: pytest.LogCaptureFixture, rid: str) -> list[str]:
    tag = f"[{short_id(rid)}]"
    return [line for line in caplog.text.splitlines() if line.endswith(tag)]


def test_a_waited_create_job_logs_the_seed_lines_with_the_request_tag(
    client: TestClient, worker: Worker, seed_log: pytest.LogCaptureFixture
) -> None:
    rid = new_id()
    worker.succeed(rid, JOB_CREATED)
    client.post(
        "/api/eks-create-job?wait=1",
        json={"job_manifest": JOB_MANIFEST, "namespace": "default"},
        headers={"X-Request-ID": rid},
    )
    lines = lines_of(seed_log, rid)
    assert any(
        "| routes               | API request: create_job namespace=default" in x for x in lines
    )
    assert any(
        "| client               | Submitted create_job namespace=default" in x for x in lines
    )
    assert any(
        "| INFO     | routes               | Successfully created job my-job in namespace default"
        in x
        for x in lines
    )
    assert any("| middleware           | POST /api/eks-create-job -> 200" in x for x in lines)


@pytest.mark.parametrize(
    ("method", "path", "params", "line"),
    [
        (
            "GET",
            "/api/eks-get-job-status",
            {"job_name": "my-job", "namespace": "default"},
            "API request: get_job_status job=my-job namespace=default",
        ),
        (
            "DELETE",
            "/api/eks-delete-job",
            {"job_name": "my-job", "namespace": "default"},
            "API request: delete_job job=my-job namespace=default",
        ),
        (
            "DELETE",
            "/api/eks-delete-namespace",
            {"namespace_name": "my-namespace"},
            "API request: delete_namespace namespace=my-namespace",
        ),
    ],
)
def test_each_route_logs_its_seed_request_line(
    client: TestClient,
    seed_log: pytest.LogCaptureFixture,
    method: str,
    path: str,
    params: dict[str, str],
    line: str,
) -> None:
    rid = client.request(method, path, params=params).headers["X-Request-ID"]
    assert any(line in x for x in lines_of(seed_log, rid))


def test_a_failure_logs_the_seed_error_line(
    client: TestClient, worker: Worker, seed_log: pytest.LogCaptureFixture
) -> None:
    rid = new_id()
    worker.fail(
        rid, errors.NotFound('jobs.batch "gone" not found', 404, "NotFound", {"reason": "NotFound"})
    )
    client.get(
        "/api/eks-get-job-status",
        params={"job_name": "gone", "wait": 1},
        headers={"X-Request-ID": rid},
    )
    assert any(
        "| ERROR    | routes               | Kubernetes API error fetching job status: (404) "
        'Reason: Not Found: jobs.batch "gone" not found' in x
        for x in lines_of(seed_log, rid)
    )


def test_a_value_that_could_forge_a_log_line_is_quoted(
    client: TestClient, seed_log: pytest.LogCaptureFixture
) -> None:
    client.get("/api/eks-get-job-status", params={"job_name": "a\n2026-01-01 | INFO | forged"})
    assert "job='a\\n2026-01-01 | INFO | forged'" in seed_log.text
    assert not any(
        line.startswith("2026-01-01 | INFO | forged") for line in seed_log.text.splitlines()
    )


def test_api_keys_are_never_logged(make_app: object, seed_log: pytest.LogCaptureFixture) -> None:
    key = "s3cret-upstream-key-0123456789"
    app = make_app(gateway_api_keys=key)  # type: ignore[operator]
    with TestClient(app) as client:
        client.get("/api/eks-get-job-status", params={"job_name": "a"}, headers={"X-API-Key": key})
        client.get(
            "/api/eks-get-job-status", params={"job_name": "a"}, headers={"X-API-Key": "x" * 20}
        )
    assert "eksops gateway - Startup" in seed_log.text
    assert "API keys: 1 configured" in seed_log.text
    assert key not in seed_log.text
    assert "x" * 20 not in seed_log.text
