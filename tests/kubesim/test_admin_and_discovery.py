"""The admin API's own behaviour, discovery documents and unknown paths."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from kubesim import AdminClient, AdminError

from .conftest import raw


def test_healthz_names_the_cluster(admin: AdminClient) -> None:
    assert admin.healthz()["status"] == "ok"


def test_config_changes_are_validated_and_reported(admin: AdminClient) -> None:
    changed = admin.configure(job_duration=0.5, token_max_age=60)

    assert (changed["job_duration"], changed["token_max_age"]) == (0.5, 60.0)
    with pytest.raises(AdminError):
        admin.configure(job_duration=-1)
    with pytest.raises(AdminError):
        admin.configure(no_such_setting=1)
    with pytest.raises(AdminError):
        admin.configure(default_outcome="explode")


def test_reset_restores_objects_config_and_rules(
    admin: AdminClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    initial = admin.config()
    admin.configure(job_duration=99)
    admin.add_fault("latency", ms=1)
    admin.deny(verb="delete")

    admin.reset()

    assert admin.config() == initial
    assert admin.faults() == []
    assert admin.denies() == []
    assert namespace not in [ns.metadata.name for ns in core.list_namespace().items]


def test_counters_count_requests_by_verb_resource_and_code(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.clear_counters()
    core.list_namespace()
    core.list_namespace()
    with pytest.raises(k8s.ApiException):
        core.read_namespace("nope")

    assert admin.count("list", "namespaces", 200) == 2
    assert admin.count("get", "namespaces", 404) == 1
    assert admin.counters()["total"] == 3


def test_version_reports_an_eks_build(api_client: Any) -> None:
    version = k8s.VersionApi(api_client).get_code()

    assert version.git_version.startswith("v1.31.")
    assert "-eks-" in version.git_version
    assert (version.major, version.minor) == ("1", "31+")


def test_discovery_lists_the_served_groups_and_resources(api_client: Any) -> None:
    core_resources = k8s.CoreV1Api(api_client).get_api_resources()
    batch_resources = k8s.BatchV1Api(api_client).get_api_resources()
    groups = k8s.ApisApi(api_client).get_api_versions()
    versions = k8s.CoreApi(api_client).get_api_versions()

    assert {r.name for r in core_resources.resources} >= {"namespaces", "namespaces/status"}
    assert {r.name for r in batch_resources.resources} >= {"jobs", "jobs/status"}
    assert [g.name for g in groups.groups] == [
        "batch",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
    ]
    assert versions.versions == ["v1"]


def test_unknown_paths_get_the_generic_not_found_status(api_client: Any) -> None:
    status, body, headers = raw(api_client, "GET", "/apis/apps/v1/namespaces/default/deployments")

    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }


def test_unsupported_verbs_on_served_resources_are_method_not_allowed(api_client: Any) -> None:
    status, body, _ = raw(api_client, "POST", "/api/v1/namespaces/default", body={})

    assert status == 405
    assert body["reason"] == "MethodNotAllowed"
    assert body["message"] == 'create is not supported on resources of kind "namespaces"'
