"""The served OpenAPI schema describes the seed endpoints as they really behave."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

SEED_OPERATIONS = [
    ("/api/eks-create-job", "post"),
    ("/api/eks-get-job-status", "get"),
    ("/api/eks-delete-job", "delete"),
    ("/api/eks-create-namespace", "post"),
    ("/api/eks-delete-namespace", "delete"),
]


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_seed_endpoint_and_the_gateways_own_are_documented(schema: dict[str, Any]) -> None:
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert documented == {
        *SEED_OPERATIONS,
        ("/api/tasks/{request_id}", "get"),
        ("/api/tasks/{request_id}", "delete"),
        ("/api/batches/{batch_id}", "delete"),
        ("/api/batches/{batch_id}/retry-failed", "post"),
        ("/api/eks-create-jobs", "post"),
        ("/api/batches/{batch_id}", "get"),
        ("/api/eks-get-job-logs", "get"),
        ("/api/events", "get"),
        ("/health", "get"),
    }


@pytest.mark.parametrize(("path", "method"), SEED_OPERATIONS)
def test_seed_endpoints_document_202_the_seed_body_and_the_request_id_header(
    schema: dict[str, Any], path: str, method: str
) -> None:
    operation = schema["paths"][path][method]
    responses = operation["responses"]
    assert {"200", "202", "409", "422", "500", "503"} <= set(responses)
    assert responses["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Accepted"
    }
    assert set(responses["202"]["headers"]) == {"X-Request-ID", "Location"}
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["X-Request-ID"]["in"] == "header"
    assert parameters["wait"]["schema"]["anyOf"][0]["minimum"] == 0


@pytest.mark.parametrize(
    ("path", "contract", "required"),
    [
        ("/api/eks-create-job", "CreateJobRequest", ["job_manifest"]),
        ("/api/eks-create-namespace", "CreateNamespaceRequest", ["namespace_name"]),
    ],
)
def test_request_bodies_are_the_shared_contracts(
    schema: dict[str, Any], path: str, contract: str, required: list[str]
) -> None:
    body = schema["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{contract}"
    }
    component = schema["components"]["schemas"][contract]
    assert component["required"] == required
    assert component["additionalProperties"] is False
    assert "ClusterRef" in schema["components"]["schemas"]


def test_the_seed_result_bodies_are_the_200_responses(schema: dict[str, Any]) -> None:
    ok = {
        path: schema["paths"][path][method]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["$ref"].rsplit("/", 1)[-1]
        for path, method in SEED_OPERATIONS
    }
    assert ok == {
        "/api/eks-create-job": "JobCreated",
        "/api/eks-get-job-status": "JobStatus",
        "/api/eks-delete-job": "Deleted",
        "/api/eks-create-namespace": "NamespaceCreated",
        "/api/eks-delete-namespace": "Deleted",
    }


def test_errors_are_documented_as_a_detail_sentence(schema: dict[str, Any]) -> None:
    error_body = schema["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_the_docs_page_works_offline_with_assets_served_by_the_gateway(
    client: TestClient,
) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assets = [
        part.split('"')[0] for part in page.text.split('="')[1:] if part.startswith("/docs/assets/")
    ]
    assert {asset.rsplit("/", 1)[1] for asset in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.content, asset
        if asset.endswith((".js", ".css")):
            assert len(served.content) > 10_000, asset  # the real bundle, not a stub
