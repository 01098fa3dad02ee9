"""With API keys configured every endpoint but /health needs one; without, none does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from fastapi.testclient import TestClient

from producer.gateway.auth import key_matches

KEY = "k3y-0f-the-upstream-app-2026"
OTHER_KEY = "an0ther-upstream-app-key-2026"


@pytest.fixture
def guarded(make_app: Any) -> Iterator[TestClient]:
    with TestClient(make_app(gateway_api_keys=f"{KEY}, {OTHER_KEY}")) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong-key-of-the-right-length"}, {"Authorization": "Basic " + KEY}],
    ids=["no-key", "wrong-key", "not-a-bearer"],
)
def test_a_request_without_a_valid_key_is_401_and_nothing_is_written(
    guarded: TestClient, redis: fakeredis.FakeRedis, headers: dict[str, str]
) -> None:
    response = guarded.post(
        "/api/eks-create-namespace", json={"namespace_name": "team-a"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Missing or invalid API key (send it in X-API-Key or as a Bearer token)"
    }
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["X-Request-ID"]
    assert redis.dbsize() == 0


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY}, {"X-API-Key": OTHER_KEY}, {"Authorization": f"Bearer {KEY}"}],
    ids=["header", "second-key", "bearer"],
)
def test_any_configured_key_is_accepted_in_either_header(
    guarded: TestClient, headers: dict[str, str]
) -> None:
    response = guarded.post(
        "/api/eks-create-namespace", json={"namespace_name": "team-a"}, headers=headers
    )
    assert response.status_code == 202


def test_polling_needs_a_key_too(guarded: TestClient) -> None:
    rid = guarded.post(
        "/api/eks-create-namespace", json={"namespace_name": "a"}, headers={"X-API-Key": KEY}
    ).json()["request_id"]
    assert guarded.get(f"/api/tasks/{rid}").status_code == 401
    assert guarded.get(f"/api/tasks/{rid}", headers={"X-API-Key": KEY}).status_code == 200


def test_the_key_is_checked_before_the_input(guarded: TestClient) -> None:
    assert guarded.get("/api/eks-get-job-status").status_code == 401


def test_health_never_needs_a_key(guarded: TestClient) -> None:
    assert guarded.get("/health").status_code == 200


def test_the_schema_declares_security_only_when_keys_are_configured(
    guarded: TestClient, client: TestClient
) -> None:
    secured = guarded.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    operation = secured["paths"]["/api/eks-create-job"]["post"]
    assert {name for item in operation["security"] for name in item} == {
        "APIKeyHeader",
        "HTTPBearer",
    }
    assert "401" in operation["responses"]
    assert "security" not in secured["paths"]["/health"]["get"]

    open_schema = client.get("/openapi.json").json()
    assert "security" not in open_schema["paths"]["/api/eks-create-job"]["post"]
    assert "securitySchemes" not in open_schema.get("components", {})


def test_with_keys_the_schema_and_docs_need_a_key_too(
    guarded: TestClient, client: TestClient
) -> None:
    for path in ("/openapi.json", "/docs"):
        assert guarded.get(path).status_code == 401, path
        assert guarded.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
        assert client.get(path).status_code == 200, path


def test_keys_match_only_exactly() -> None:
    keys = (KEY.encode(), OTHER_KEY.encode())
    assert key_matches(KEY, keys)
    assert not key_matches(KEY[:-1], keys)
    assert not key_matches(KEY + "x", keys)
    assert not key_matches("", keys)
    assert not key_matches(None, keys)
    assert not key_matches("é" * 20, keys)
