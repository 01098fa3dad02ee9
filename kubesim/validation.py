"""The Job rules the apiserver enforces after defaulting, as field errors.

A subset of ``pkg/apis/batch/validation/validation.go`` (``ValidateJob``,
``validateJobSpec``) and ``pkg/apis/core/validation/validation.go``
(``ValidatePodTemplateSpec``, ``validateContainers``), chosen for what callers can
get wrong in a manifest: names, restartPolicy, containers, counts. Errors come
back in the order the Go code appends them, because the 422 message joins them.
"""

from __future__ import annotations

from typing import Any

from kubesim import names
from kubesim.statuses import (
    DUPLICATE,
    INVALID,
    REQUIRED,
    FieldError,
    not_supported,
)

JSON = dict[str, Any]
_NEGATIVE = "must be greater than or equal to 0"
_RESTART_POLICIES = ("OnFailure", "Never")
_COMPLETION_MODES = ("NonIndexed", "Indexed")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _non_negative(spec: JSON, key: str, path: str) -> list[FieldError]:
    value = spec.get(key)
    if isinstance(value, int) and value < 0:
        return [FieldError(INVALID, f"{path}.{key}", value, _NEGATIVE)]
    return []


def _containers(spec: JSON, path: str) -> list[FieldError]:
    containers = spec.get("containers") or []
    if not containers:
        return [FieldError(REQUIRED, f"{path}.containers")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        name = container.get("name") or ""
        if not name:
            errors.append(FieldError(REQUIRED, f"{where}.name"))
        else:
            errors += [
                FieldError(INVALID, f"{where}.name", name, m)
                for m in names.dns1123_label_errors(name)
            ]
            if name in seen:
                errors.append(FieldError(DUPLICATE, f"{where}.name", name))
            seen.add(name)
        if not container.get("image"):
            errors.append(FieldError(REQUIRED, f"{where}.image"))
        policy = container.get("imagePullPolicy")
        if policy and policy not in _PULL_POLICIES:
            errors.append(not_supported(f"{where}.imagePullPolicy", policy, _PULL_POLICIES))
    return errors


def _template_labels(template: JSON) -> list[FieldError]:
    labels = (template.get("metadata") or {}).get("labels") or {}
    errors = []
    for value in labels.values():
        for message in names.label_value_errors(str(value)):
            errors.append(FieldError(INVALID, "spec.template.labels", value, message))
    return errors


def validate_job(job: JSON) -> list[FieldError]:
    """All field errors for a defaulted Job; empty means valid."""
    meta = job["metadata"]
    errors = names.validate_object_names(
        meta.get("name") or "", meta.get("generateName") or "", label=False
    )
    spec = job.get("spec") or {}
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit"):
        errors += _non_negative(spec, key, "spec")
    errors += _non_negative(spec, "ttlSecondsAfterFinished", "spec")
    mode = spec.get("completionMode")
    if mode not in _COMPLETION_MODES:
        errors.append(not_supported("spec.completionMode", mode, _COMPLETION_MODES))
    elif mode == "Indexed" and spec.get("completions") is None:
        errors.append(
            FieldError(REQUIRED, "spec.completions", detail="when completion mode is Indexed")
        )
    if spec.get("manualSelector") and not spec.get("selector"):
        errors.append(FieldError(REQUIRED, "spec.selector"))
    template = spec.get("template") or {}
    errors += _template_labels(template)
    pod_spec = template.get("spec") or {}
    errors += _containers(pod_spec, "spec.template.spec")
    policy = pod_spec.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        errors.append(not_supported("spec.template.spec.restartPolicy", policy, _RESTART_POLICIES))
    return errors


def merge(schema_required: list[FieldError], rules: list[FieldError]) -> list[FieldError]:
    """Rule errors first; schema ``required`` findings only where no rule spoke."""
    covered = {e.field for e in rules}
    extra = [e for e in schema_required if e.field not in covered]
    return rules + extra
