"""OpenAPI documents, access and identity reviews, and state kept across restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from kubesim import AdminClient, Simulator
from kubesim.testing import kube_api_client

from .conftest import job_manifest
from .helpers import eventually
from .test_negotiation_and_lists import send


def test_openapi_v3_lists_the_served_group_versions_and_their_schemas(api_client: Any) -> None:
    _, data, _ = send(api_client, "GET", "/openapi/v3")
    paths = json.loads(data)["paths"]
    assert {"api/v1", "apis/batch/v1", "apis/events.k8s.io/v1"} <= set(paths)
    _, doc, _ = send(api_client, "GET", paths["apis/batch/v1"]["serverRelativeURL"])
    schemas = json.loads(doc)["components"]["schemas"]
    job = schemas["io.k8s.api.batch.v1.Job"]
    assert job["x-kubernetes-group-version-kind"] == [
        {"group": "batch", "kind": "Job", "version": "v1"}
    ]
    assert "fieldValidation" in json.dumps(json.loads(doc)["paths"])


def test_openapi_v2_is_json_and_refuses_protobuf_only(api_client: Any) -> None:
    status, data, _ = send(api_client, "GET", "/openapi/v2")
    assert status == 200
    assert json.loads(data)["swagger"] == "2.0"
    status, _, _ = send(
        api_client,
        "GET",
        "/openapi/v2",
        accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    )
    assert status == 406


def test_self_subject_access_review_follows_the_deny_rules(
    admin: AdminClient, api_client: Any
) -> None:
    api = k8s.AuthorizationV1Api(api_client)
    review = {
        "spec": {
            "resourceAttributes": {
                "verb": "create",
                "resource": "jobs",
                "group": "batch",
                "namespace": "x",
            }
        }
    }
    assert api.create_self_subject_access_review(review).status.allowed is True
    admin.deny(verb="create", resource="jobs")
    denied = api.create_self_subject_access_review(review).status
    assert (denied.allowed, denied.denied) == (False, True)


def test_self_subject_review_names_the_iam_caller(sim: Simulator, api_client: Any) -> None:
    review = k8s.AuthenticationV1Api(api_client).create_self_subject_review({})
    assert review.status.user_info.username == sim.admin.config()["caller_arn"]
    assert review.status.user_info.groups == ["system:authenticated"]


def test_objects_and_lifecycles_survive_a_restart(tmp_path: Path) -> None:
    options: dict[str, Any] = {
        "cluster": "keep",
        "state_dir": tmp_path,
        "job_duration": 0.5,
        "pod_startup": 0.05,
    }
    with Simulator(**options) as first:
        api = kube_api_client(first)
        batch = k8s.BatchV1Api(api)
        created = batch.create_namespaced_job("default", job_manifest("kept"))
        api.close()
    with Simulator(**options) as second:
        api = kube_api_client(second)
        batch = k8s.BatchV1Api(api)

        def done() -> Any:
            job = batch.read_namespaced_job("kept", "default")
            return job if job.status.succeeded else None

        job = eventually(done)
        assert job.metadata.uid == created.metadata.uid
        listed = k8s.CoreV1Api(api).list_namespaced_pod("default").items
        assert [p.status.phase for p in listed] == ["Succeeded"]
        api.close()
