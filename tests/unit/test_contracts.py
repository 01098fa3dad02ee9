"""The request contracts refuse bad input with a message naming the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.catalog import spec_of
from worker.contracts import (
    ClusterRef,
    CreateJobRequest,
    CreateNamespaceRequest,
    DeleteNamespaceRequest,
    JobRef,
    Limits,
    Operation,
)
from worker.names import job_name_for_request, normalise_request_id, protection_reason
from worker.validation import explain

JOB = {
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}
        }
    }
}


def rejection(model: type, data: dict, limits: Limits | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=(limits or Limits()).as_context())
    return explain(caught.value)


def test_a_minimal_job_manifest_gets_api_version_and_kind() -> None:
    request = CreateJobRequest.model_validate({"job_manifest": JOB})
    assert request.namespace == "default"
    assert request.job_manifest["apiVersion"] == "batch/v1"
    assert request.job_manifest["kind"] == "Job"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("Bad_Name", "not a valid name"),
        ("a" * 64, "64 characters; the limit is 63"),
        ("../etc", "not a valid name"),
        ("naïve", "not a valid name"),
        ("-leading", "not a valid name"),
    ],
)
def test_invalid_namespace_names_are_refused_with_the_rule_they_break(
    name: str, problem: str
) -> None:
    assert problem in rejection(CreateNamespaceRequest, {"namespace_name": name})


def test_invalid_job_names_are_refused_naming_the_field() -> None:
    message = rejection(JobRef, {"job_name": "My Job"})
    assert "job_name" in message
    assert "not a valid name" in message


def test_unknown_fields_are_refused_by_name() -> None:
    message = rejection(JobRef, {"job_name": "ok", "namespcae": "typo"})
    assert "namespcae: unknown field" in message


def test_a_missing_required_field_is_named() -> None:
    assert "job_manifest: required field is missing" in rejection(CreateJobRequest, {})


@pytest.mark.parametrize(
    "name",
    [
        "kube-system",
        "KUBE-SYSTEM",
        " kube-system",
        "kube-system ",
        "default",
        "kube-public",
        "kube-node-lease",
        "kube-anything",
        "amazon-cloudwatch",
    ],
)
def test_protected_namespaces_are_never_accepted_for_deletion(name: str) -> None:
    message = rejection(DeleteNamespaceRequest, {"namespace_name": name})
    assert "is protected" in message


def test_configured_protected_namespaces_are_refused_too() -> None:
    limits = Limits(protected_namespaces=("payments",))
    assert "configured list" in rejection(
        DeleteNamespaceRequest, {"namespace_name": "Payments"}, limits
    )
    assert DeleteNamespaceRequest.model_validate(
        {"namespace_name": "team-a"}, context=limits.as_context()
    )


def test_protection_reason_is_none_for_ordinary_namespaces() -> None:
    assert protection_reason("team-a") is None
    assert protection_reason("kubernetes-team") is None


def test_cluster_references_are_validated() -> None:
    assert ClusterRef(name="prod-eu", region="eu-west-1").region == "eu-west-1"
    with pytest.raises(ValidationError, match="not an AWS region"):
        ClusterRef(name="prod", region="Europe")
    with pytest.raises(ValidationError, match="not a valid EKS cluster name"):
        ClusterRef(name="-bad")


def test_request_ids_must_be_uuids_and_are_normalised() -> None:
    assert (
        normalise_request_id(" 3F2B8C1E-6D4A-4F1B-9C2E-7A5D8E9F0B1C ")
        == "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"
    )
    with pytest.raises(ValueError, match="not a UUID"):
        normalise_request_id("batch-42")


def test_generated_job_names_are_deterministic_in_the_request_id() -> None:
    rid = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"
    assert job_name_for_request(rid) == job_name_for_request(rid) == "eksops-3f2b8c1e6d4a4f1b9c2e"
    assert job_name_for_request(rid, generate_name="nightly-") == "nightly-3f2b8"


def test_every_operation_has_a_task_name_and_a_declaration() -> None:
    for operation in Operation:
        assert operation.task_name == f"eksops.{operation.value}"
        assert Operation.from_task_name(operation.task_name) is operation
        assert spec_of(operation).operation is operation
