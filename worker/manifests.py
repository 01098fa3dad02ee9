"""Validation of Job manifests before anything is enqueued.

A manifest the Kubernetes API would reject must be refused by the producer, with the
field that is wrong, so nothing invalid ever reaches the queue. Checks, in order: size,
shape, ``apiVersion``/``kind``, names, the upstream OpenAPI schema of ``batch/v1 Job``
(strict: unknown fields are errors), then the Job rules the apiserver adds on top of
the schema (a container, ``restartPolicy`` Never or OnFailure).

The schema files come from the ``kubernetes-validate`` package (one per Kubernetes
release); ``jsonschema-rs`` evaluates them, because bursts validate thousands of
manifests per second and the pure-Python evaluator costs ~1 ms per manifest.
Pure: no cluster clients, safe in producers.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import jsonschema_rs
import orjson

from worker.errors import InvalidManifest, InvalidName
from worker.names import check_dns1123_label, check_generate_name

DEFAULT_MAX_MANIFEST_BYTES = 512 * 1024
SCHEMA_KUBERNETES_VERSION = "1.37.0"
_ALLOWED_RESTART_POLICIES = ("OnFailure", "Never")


@functools.cache
def job_schema_validator() -> Any:
    """Return the compiled validator of the ``batch/v1 Job`` schema (loaded once)."""
    root = importlib.resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{SCHEMA_KUBERNETES_VERSION}-local-strict"
    )
    schema = json.loads(root.joinpath("job-batch-v1.json").read_text())
    definitions = json.loads(root.joinpath("_definitions.json").read_text())
    registry = jsonschema_rs.Registry([(definitions["$id"], definitions), (schema["$id"], schema)])
    return jsonschema_rs.validator_for(schema, registry=registry)


def _field_path(parts: list[str | int]) -> str:
    path = "job_manifest"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def encoded_size(manifest: object) -> int:
    """Return the size of ``manifest`` as the JSON that will travel on the queue."""
    try:
        return len(orjson.dumps(manifest))
    except TypeError:  # not JSON at all (e.g. a set); the schema check names the field
        return len(json.dumps(manifest, default=str).encode())


def validate_job_manifest(
    manifest: object,
    *,
    namespace: str,
    max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
) -> dict[str, Any]:
    """Check ``manifest`` and return it with ``apiVersion``/``kind`` filled in.

    Raises :class:`InvalidManifest` naming the first problem found.
    """
    if not isinstance(manifest, dict):
        raise InvalidManifest(f"job_manifest must be an object, not {type(manifest).__name__}")
    size = encoded_size(manifest)
    if size > max_bytes:
        raise InvalidManifest(f"job_manifest is {size} bytes; the limit is {max_bytes} bytes")
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise InvalidManifest("job_manifest.spec is required and must be an object")

    manifest = {"apiVersion": "batch/v1", "kind": "Job", **manifest}
    if manifest["apiVersion"] != "batch/v1":
        raise InvalidManifest(
            f'job_manifest.apiVersion must be "batch/v1", not {manifest["apiVersion"]!r}'
        )
    if manifest["kind"] != "Job":
        raise InvalidManifest(f'job_manifest.kind must be "Job", not {manifest["kind"]!r}')

    _check_metadata(manifest.get("metadata"), namespace=namespace)

    errors = sorted(
        job_schema_validator().iter_errors(manifest), key=lambda error: list(error.instance_path)
    )
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidManifest(f"{_field_path(list(first.instance_path))}: {first.message}{more}")

    _check_job_rules(spec)
    return manifest


def _check_metadata(metadata: object, *, namespace: str) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InvalidManifest("job_manifest.metadata must be an object")
    try:
        if "name" in metadata:
            check_dns1123_label(metadata["name"], field="job_manifest.metadata.name")
        if "generateName" in metadata:
            check_generate_name(
                metadata["generateName"], field="job_manifest.metadata.generateName"
            )
    except InvalidName as exc:
        raise InvalidManifest(str(exc)) from None
    declared = metadata.get("namespace")
    if declared is not None and declared != namespace:
        raise InvalidManifest(
            f"job_manifest.metadata.namespace is {declared!r} but the request targets "
            f"namespace {namespace!r}; drop one or make them equal"
        )


def _check_job_rules(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod_spec, dict):
        raise InvalidManifest("job_manifest.spec.template.spec is required")
    containers = pod_spec.get("containers")
    if not containers:
        raise InvalidManifest(
            "job_manifest.spec.template.spec.containers: at least one is required"
        )
    for index, container in enumerate(containers):
        if not container.get("image"):
            raise InvalidManifest(
                f"job_manifest.spec.template.spec.containers[{index}].image is required"
            )
    policy = pod_spec.get("restartPolicy")
    if policy not in _ALLOWED_RESTART_POLICIES:
        supported = ", ".join(f'"{value}"' for value in _ALLOWED_RESTART_POLICIES)
        shown = "missing" if policy is None else f'"{policy}"'
        raise InvalidManifest(
            f"job_manifest.spec.template.spec.restartPolicy is {shown}; "
            f"a Job requires one of {supported}"
        )
