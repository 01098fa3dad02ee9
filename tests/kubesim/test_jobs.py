"""batch/v1 Jobs: defaulting, validation texts, conflicts, listing and deletion."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client as k8s

from kubesim import AdminClient

from .conftest import api_error, job_manifest, raw


def test_a_created_job_carries_the_apiserver_defaults(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    job = batch.create_namespaced_job(namespace, job_manifest("defaults"))

    uid = job.metadata.uid
    assert job.spec.parallelism == 1
    assert job.spec.completions == 1
    assert job.spec.backoff_limit == 6
    assert job.spec.completion_mode == "NonIndexed"
    assert job.spec.suspend is False
    assert job.spec.manual_selector is None
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert job.spec.template.metadata.labels == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "defaults",
        "controller-uid": uid,
        "job-name": "defaults",
    }
    assert job.metadata.labels == job.spec.template.metadata.labels
    assert job.metadata.generation == 1
    assert job.spec.template.spec.termination_grace_period_seconds == 30
    assert job.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_job_labels_given_by_the_caller_are_kept(batch: k8s.BatchV1Api, namespace: str) -> None:
    job = batch.create_namespaced_job(namespace, job_manifest("labelled", labels={"team": "a"}))

    assert job.metadata.labels == {"team": "a"}


def test_creation_timestamps_are_rfc3339_utc_and_resource_versions_increase(
    batch: k8s.BatchV1Api, api_client: Any, namespace: str
) -> None:
    first = batch.create_namespaced_job(namespace, job_manifest("first"))
    second = batch.create_namespaced_job(namespace, job_manifest("second"))
    _, stored, _ = raw(api_client, "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/first")

    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert stored["metadata"]["creationTimestamp"].endswith("Z")
    assert len(stored["metadata"]["creationTimestamp"]) == len("2026-01-20T10:30:00Z")


def test_generate_name_gives_a_unique_suffixed_name(batch: k8s.BatchV1Api, namespace: str) -> None:
    manifest = job_manifest()
    manifest["metadata"] = {"generateName": "batch-"}

    names = {batch.create_namespaced_job(namespace, manifest).metadata.name for _ in range(3)}

    assert len(names) == 3
    assert all(n.startswith("batch-") and len(n) == len("batch-") + 5 for n in names)


def test_creating_in_a_missing_namespace_is_namespace_not_found(batch: k8s.BatchV1Api) -> None:
    status, body, _ = api_error(lambda: batch.create_namespaced_job("nope", job_manifest("x")))

    assert status == 404
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


def test_reading_a_missing_job_is_not_found_as_in_the_seed(batch: k8s.BatchV1Api) -> None:
    status, body, _ = api_error(lambda: batch.read_namespaced_job("nonexistent-job", "default"))

    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nonexistent-job" not found',
        "reason": "NotFound",
        "details": {"name": "nonexistent-job", "group": "batch", "kind": "jobs"},
        "code": 404,
    }


def test_creating_an_existing_job_is_already_exists(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job_manifest("dup"))

    status, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, job_manifest("dup")))

    assert status == 409
    assert body["message"] == 'jobs.batch "dup" already exists'
    assert body["details"] == {"name": "dup", "group": "batch", "kind": "jobs"}


def test_restart_policy_always_is_an_unsupported_value(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    manifest = job_manifest("always")
    manifest["spec"]["template"]["spec"]["restartPolicy"] = "Always"

    status, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, manifest))

    assert status == 422
    assert body["message"] == (
        'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
        '"Always": supported values: "OnFailure", "Never"'
    )
    assert body["details"] == {
        "name": "always",
        "group": "batch",
        "kind": "Job",
        "causes": [
            {
                "reason": "FieldValueNotSupported",
                "message": 'Unsupported value: "Always": supported values: "OnFailure", "Never"',
                "field": "spec.template.spec.restartPolicy",
            }
        ],
    }


def test_a_missing_restart_policy_defaults_to_always_and_is_rejected(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    manifest = job_manifest("no-policy")
    del manifest["spec"]["template"]["spec"]["restartPolicy"]

    _, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, manifest))

    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in body["message"]


def test_several_errors_are_listed_in_brackets(batch: k8s.BatchV1Api, namespace: str) -> None:
    manifest = job_manifest("many", spec={"parallelism": -1})
    manifest["spec"]["template"]["spec"]["containers"] = [{"name": "main"}]

    _, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, manifest))

    assert body["message"] == (
        'Job.batch "many" is invalid: [spec.parallelism: Invalid value: -1: must be greater than '
        "or equal to 0, spec.template.spec.containers[0].image: Required value]"
    )
    assert [c["field"] for c in body["details"]["causes"]] == [
        "spec.parallelism",
        "spec.template.spec.containers[0].image",
    ]


def test_a_job_without_containers_is_invalid(batch: k8s.BatchV1Api, namespace: str) -> None:
    manifest = job_manifest("empty")
    manifest["spec"]["template"]["spec"]["containers"] = []

    _, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, manifest))

    assert (
        body["message"]
        == 'Job.batch "empty" is invalid: spec.template.spec.containers: Required value'
    )


def test_a_container_without_a_name_is_invalid(api_client: Any, namespace: str) -> None:
    manifest = job_manifest("nameless")
    manifest["spec"]["template"]["spec"]["containers"] = [{"image": "busybox"}]

    status, body, _ = raw(
        api_client, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=manifest
    )

    assert status == 422

    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": "spec.template.spec.containers[0].name",
        }
    ]


def test_a_job_without_a_name_is_invalid(batch: k8s.BatchV1Api, namespace: str) -> None:
    manifest = job_manifest()
    manifest["metadata"] = {}

    status, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, manifest))

    assert status == 422
    assert body["message"] == (
        'Job.batch "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_a_wrongly_typed_field_is_a_decoding_bad_request(api_client: Any, namespace: str) -> None:
    manifest = job_manifest("typed", spec={"parallelism": "two"})

    status, body, _ = raw(
        api_client, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=manifest
    )

    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == (
        'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string into Go '
        "struct field JobSpec.spec.parallelism of type int32"
    )


def test_unknown_fields_are_dropped_with_a_warning_by_default(
    api_client: Any, namespace: str
) -> None:
    manifest = job_manifest("extra", spec={"colour": "blue"})

    status, job, headers = raw(
        api_client, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=manifest
    )

    assert status == 201
    assert headers["Warning"] == '299 - "unknown field \\"spec.colour\\""'
    assert "colour" not in job["spec"]


def test_unknown_fields_are_a_bad_request_with_strict_field_validation(
    api_client: Any, namespace: str
) -> None:
    manifest = job_manifest("strict", spec={"colour": "blue"})

    status, body, _ = raw(
        api_client,
        "POST",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        query=[("fieldValidation", "Strict")],
        body=manifest,
    )

    assert status == 400
    assert body["message"] == (
        'Job in version "v1" cannot be handled as a Job: strict decoding error: '
        'unknown field "spec.colour"'
    )


def test_dry_run_validates_without_storing(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job_manifest("dry"), dry_run="All")

    api_error(lambda: batch.read_namespaced_job("dry", namespace))


def test_jobs_are_listed_per_namespace_across_namespaces_and_by_label(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("a", labels={"app": "x"}))
    batch.create_namespaced_job(namespace, job_manifest("b", labels={"app": "y"}))
    batch.create_namespaced_job("default", job_manifest("c", labels={"app": "x"}))

    in_team = batch.list_namespaced_job(namespace)
    everywhere = batch.list_job_for_all_namespaces(label_selector="app=x")
    not_x = batch.list_namespaced_job(namespace, label_selector="app!=x")
    in_set = batch.list_job_for_all_namespaces(label_selector="app in (x,y),app")

    assert [j.metadata.name for j in in_team.items] == ["a", "b"]
    assert [(j.metadata.namespace, j.metadata.name) for j in everywhere.items] == [
        ("default", "c"),
        ("team-a", "a"),
    ]
    assert [j.metadata.name for j in not_x.items] == ["b"]
    assert len(in_set.items) == 3
    assert int(in_team.metadata.resource_version) >= int(
        in_team.items[-1].metadata.resource_version
    )


def test_list_pages_with_limit_and_continue(batch: k8s.BatchV1Api, namespace: str) -> None:
    for name in ("a", "b", "c"):
        batch.create_namespaced_job(namespace, job_manifest(name))

    first = batch.list_namespaced_job(namespace, limit=2)
    rest = batch.list_namespaced_job(namespace, limit=2, _continue=first.metadata._continue)

    assert [j.metadata.name for j in first.items] == ["a", "b"]
    assert [j.metadata.name for j in rest.items] == ["c"]
    assert rest.metadata._continue is None


def test_background_deletion_removes_the_job_at_once_and_returns_a_success_status(
    batch: k8s.BatchV1Api, api_client: Any, namespace: str
) -> None:
    uid = batch.create_namespaced_job(namespace, job_manifest("bg")).metadata.uid

    status, body, _ = raw(
        api_client,
        "DELETE",
        f"/apis/batch/v1/namespaces/{namespace}/jobs/bg",
        query=[("propagationPolicy", "Background")],
    )

    assert status == 200
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "bg", "group": "batch", "kind": "jobs", "uid": uid},
    }
    api_error(lambda: batch.read_namespaced_job("bg", namespace))


def test_foreground_deletion_returns_the_job_being_deleted_until_its_pods_are_gone(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("fg"))
    batch.read_namespaced_job("fg", namespace)  # the controller has started its pod

    _, code, _ = batch.delete_namespaced_job_with_http_info(
        "fg", namespace, propagation_policy="Foreground"
    )
    during = batch.read_namespaced_job("fg", namespace)
    recreate = api_error(lambda: batch.create_namespaced_job(namespace, job_manifest("fg")))
    time.sleep(0.4)

    assert code == 200
    assert during.metadata.deletion_timestamp is not None
    assert during.metadata.finalizers == ["foregroundDeletion"]
    assert recreate[1]["message"] == 'object is being deleted: jobs.batch "fg" already exists'
    assert api_error(lambda: batch.read_namespaced_job("fg", namespace))[0] == 404


def test_the_propagation_policy_may_come_in_the_delete_options_body(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("body"))

    status = batch.delete_namespaced_job(
        "body", namespace, body=k8s.V1DeleteOptions(propagation_policy="Background")
    )

    assert batch.api_client.sanitize_for_serialization(status)["status"] == "Success"
    assert api_error(lambda: batch.read_namespaced_job("body", namespace))[0] == 404


def test_deletion_without_a_policy_orphans_and_warns_like_batch_v1(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("plain"))

    _, code, headers = batch.delete_namespaced_job_with_http_info("plain", namespace)

    assert code == 200
    assert "child pods are preserved by default when jobs are deleted" in headers["Warning"]


def test_deleting_a_missing_job_is_not_found(batch: k8s.BatchV1Api, namespace: str) -> None:
    status, body, _ = api_error(lambda: batch.delete_namespaced_job("nope", namespace))

    assert (status, body["message"]) == (404, 'jobs.batch "nope" not found')


def test_the_status_subresource_reads_the_job(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    created = batch.create_namespaced_job(namespace, job_manifest("st"))

    assert batch.read_namespaced_job_status("st", namespace).metadata.uid == created.metadata.uid
