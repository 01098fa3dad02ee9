"""Job manifests the Kubernetes API would reject are refused before enqueueing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from worker.manifests import InvalidManifest, validate_job_manifest

VALID: dict[str, Any] = {
    "metadata": {"name": "nightly", "labels": {"team": "data"}},
    "spec": {
        "backoffLimit": 2,
        "template": {
            "spec": {
                "containers": [{"name": "main", "image": "busybox", "command": ["echo", "hi"]}],
                "restartPolicy": "OnFailure",
            }
        },
    },
}


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(VALID)
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return manifest


def refusal(manifest: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidManifest) as caught:
        validate_job_manifest(manifest, namespace="default", **kwargs)
    return str(caught.value)


def test_a_valid_manifest_passes_unchanged_apart_from_defaults() -> None:
    result = validate_job_manifest(VALID, namespace="default")
    assert result["spec"] == VALID["spec"]
    assert (result["apiVersion"], result["kind"]) == ("batch/v1", "Job")


def test_unknown_fields_deep_in_the_spec_are_named_with_their_path() -> None:
    manifest = broken(
        ["spec", "template", "spec", "containers"], [{"name": "c", "image": "x", "bogus": 1}]
    )
    message = refusal(manifest)
    assert message.startswith("job_manifest.spec.template.spec.containers[0]:")
    assert "'bogus' was unexpected" in message


def test_wrong_types_are_named_with_their_path() -> None:
    message = refusal(broken(["spec", "backoffLimit"], "six"))
    assert message.startswith("job_manifest.spec.backoffLimit:")


def test_restart_policy_always_is_refused_as_the_api_would() -> None:
    message = refusal(broken(["spec", "template", "spec", "restartPolicy"], "Always"))
    assert 'restartPolicy is "Always"' in message
    assert '"OnFailure", "Never"' in message


def test_a_job_without_containers_is_refused() -> None:
    assert "at least one is required" in refusal(
        broken(["spec", "template", "spec", "containers"], [])
    )


def test_a_container_without_an_image_is_refused() -> None:
    assert "containers[0].image is required" in refusal(
        broken(["spec", "template", "spec", "containers"], [{"name": "c"}])
    )


def test_a_manifest_without_spec_is_refused() -> None:
    assert "job_manifest.spec is required" in refusal({"metadata": {"name": "x"}})


def test_other_kinds_are_refused() -> None:
    assert 'kind must be "Job"' in refusal({**VALID, "kind": "Deployment"})
    assert 'apiVersion must be "batch/v1"' in refusal({**VALID, "apiVersion": "batch/v2"})


def test_a_manifest_above_the_size_limit_is_refused_with_both_sizes() -> None:
    manifest = broken(["metadata", "labels"], {"blob": "x" * 4096})
    assert "the limit is 2048 bytes" in refusal(manifest, max_bytes=2048)


def test_an_invalid_metadata_name_is_refused() -> None:
    assert "job_manifest.metadata.name" in refusal(broken(["metadata", "name"], "Nightly_Run"))


def test_a_namespace_in_metadata_must_match_the_request() -> None:
    message = refusal(broken(["metadata", "namespace"], "other"))
    assert "targets namespace 'default'" in message


def test_not_a_mapping_is_refused() -> None:
    assert "must be an object" in refusal(["spec"])
