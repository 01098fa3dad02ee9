"""Writes: PATCH in four types, PUT with optimistic concurrency, delete options."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from .conftest import api_error, job_manifest, raw
from .helpers import eventually


def _patch(
    api_client: Any, path: str, body: Any, content_type: str, **query: str
) -> tuple[int, Any]:
    serialized = api_client.param_serialize(
        "PATCH",
        path,
        query_params=list(query.items()),
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized)
    response.read()
    return response.status, json.loads(response.data)


JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"


def test_merge_strategic_and_json_patches_change_labels(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("p"))
    path = JOBS.format(ns=namespace) + "/p"
    code, merged = _patch(
        api_client, path, {"metadata": {"labels": {"a": "1"}}}, "application/merge-patch+json"
    )
    assert code == 200
    assert merged["metadata"]["labels"]["a"] == "1"
    code, strategic = _patch(
        api_client,
        path,
        {"metadata": {"annotations": {"b": "2"}}},
        "application/strategic-merge-patch+json",
    )
    assert strategic["metadata"]["annotations"] == {"b": "2"}
    code, patched = _patch(
        api_client,
        path,
        [{"op": "remove", "path": "/metadata/labels/a"}],
        "application/json-patch+json",
    )
    assert "a" not in patched["metadata"]["labels"]
    assert int(patched["metadata"]["resourceVersion"]) > int(merged["metadata"]["resourceVersion"])


def test_a_failed_json_patch_test_is_unprocessable(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("t"))
    code, body = _patch(
        api_client,
        JOBS.format(ns=namespace) + "/t",
        [{"op": "test", "path": "/spec/parallelism", "value": 5}],
        "application/json-patch+json",
    )
    assert code == 422
    assert body["message"] == "testing value /spec/parallelism failed: test failed"


def test_an_unknown_patch_type_is_unsupported_media_type(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("u"))
    code, body = _patch(api_client, JOBS.format(ns=namespace) + "/u", "{}", "text/plain")
    assert code == 415
    assert body["reason"] == "UnsupportedMediaType"
    assert body["message"].startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
    )


def test_suspending_a_job_by_patch_deletes_its_pods(
    api_client: Any, batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(
        namespace, job_manifest("s", annotations={"kubesim.eksops.io/outcome": "hang"})
    )
    eventually(lambda: core.list_namespaced_pod(namespace).items)
    batch.patch_namespaced_job("s", namespace, {"spec": {"suspend": True}})
    job = eventually(
        lambda: (j := batch.read_namespaced_job("s", namespace)).status.conditions and j
    )
    assert [(c.type, c.reason) for c in job.status.conditions] == [("Suspended", "JobSuspended")]


def test_a_stale_resource_version_on_put_is_a_conflict(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    created = batch.create_namespaced_job(namespace, job_manifest("c"))
    batch.patch_namespaced_job("c", namespace, {"metadata": {"labels": {"x": "y"}}})
    created.metadata.labels = {"z": "w"}
    status, body, _ = api_error(lambda: batch.replace_namespaced_job("c", namespace, created))
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on jobs.batch "c": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )


def test_the_job_template_is_immutable(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job_manifest("imm"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}}
    status, body, _ = api_error(lambda: batch.patch_namespaced_job("imm", namespace, patch))
    assert status == 422
    assert body["message"].startswith('Job.batch "imm" is invalid: spec.template: Invalid value: ')
    assert body["message"].endswith(": field is immutable")


def test_the_status_subresource_changes_only_status(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(
        namespace, job_manifest("st", annotations={"kubesim.eksops.io/outcome": "hang"})
    )
    code, body = _patch(
        api_client,
        JOBS.format(ns=namespace) + "/st/status",
        {"metadata": {"labels": {"ignored": "yes"}}, "status": {"active": 9}},
        "application/merge-patch+json",
    )
    assert code == 200
    assert body["status"]["active"] == 9
    assert "ignored" not in body["metadata"]["labels"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"dryRun": "Foo"},
            'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Foo"]: supported values: "All"',
        ),
        (
            {"fieldValidation": "Loose"},
            'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": supported values: "", "Ignore", "Strict", "Warn"',
        ),
        (
            {"fieldManager": "a\u0007b"},
            'CreateOptions.meta.k8s.io "" is invalid: fieldManager: Invalid value: "a\\u0007b": invalid character U+0007 (at position 1)',
        ),
    ],
)
def test_invalid_options_on_create_are_422_and_store_nothing(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str, query: dict[str, str], message: str
) -> None:
    status, body, _ = raw(
        api_client,
        "POST",
        JOBS.format(ns=namespace),
        query=list(query.items()),
        body=job_manifest("x"),
    )
    assert status == 422
    assert body["message"] == message
    assert batch.list_namespaced_job(namespace).items == []


def test_delete_options_in_the_body_with_dry_run_delete_nothing(
    api_client: Any, core: k8s.CoreV1Api, namespace: str
) -> None:
    status, body, _ = raw(
        api_client,
        "DELETE",
        f"/api/v1/namespaces/{namespace}",
        body={"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]},
    )
    assert status == 200
    assert body["status"]["phase"] == "Terminating"
    assert core.read_namespace(namespace).status.phase == "Active"


def test_a_failed_uid_precondition_is_a_conflict(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job_manifest("pre"))
    options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid="not-it"))
    status, body, _ = api_error(lambda: batch.delete_namespaced_job("pre", namespace, body=options))
    assert status == 409
    assert (
        "Precondition failed: UID in precondition: not-it, UID in object meta: " in body["message"]
    )
    assert batch.read_namespaced_job("pre", namespace).metadata.name == "pre"


def test_an_invalid_propagation_policy_is_invalid_delete_options(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("pol"))
    status, body, _ = api_error(
        lambda: batch.delete_namespaced_job("pol", namespace, propagation_policy="Sideways")
    )
    assert status == 422
    assert body["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
        '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"'
    )


def test_server_side_apply_records_managed_fields_and_reports_conflicts(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    path = JOBS.format(ns=namespace) + "/ssa"
    manifest = job_manifest("ssa")
    manifest["spec"]["parallelism"] = 1
    code, body = _patch(
        api_client,
        path,
        yaml.safe_dump(manifest),
        "application/apply-patch+yaml",
        fieldManager="alice",
    )
    assert code == 201
    assert [m["manager"] for m in body["metadata"]["managedFields"]] == ["alice"]
    manifest["spec"]["parallelism"] = 2
    code, body = _patch(
        api_client,
        path,
        yaml.safe_dump(manifest),
        "application/apply-patch+yaml",
        fieldManager="bob",
    )
    assert code == 409
    assert body["message"] == (
        'Apply failed with 1 conflict: conflict with "alice" using batch/v1: .spec.parallelism'
    )
    code, body = _patch(
        api_client,
        path,
        yaml.safe_dump(manifest),
        "application/apply-patch+yaml",
        fieldManager="bob",
        force="true",
    )
    assert code == 200
    assert body["spec"]["parallelism"] == 2
    code, body = _patch(api_client, path, yaml.safe_dump(manifest), "application/apply-patch+yaml")
    assert code == 422
    assert (
        body["message"]
        == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
