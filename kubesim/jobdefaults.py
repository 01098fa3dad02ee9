"""What the apiserver fills into a Job on create, before validation.

Mirrors ``pkg/apis/batch/v1/defaults.go`` (parallelism, completions, backoffLimit,
completionMode, suspend, podReplacementPolicy, Job labels from the template),
``pkg/apis/core/v1/defaults.go`` for the pod template (restartPolicy Always,
dnsPolicy, schedulerName, terminationGracePeriodSeconds, per-container pull policy
and termination message) and the Job strategy's ``PrepareForCreate`` /
``generateSelector`` (controller-uid and job-name labels, the selector).
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"


def _pull_policy(image: str) -> str:
    # ``:latest`` or no tag means Always; a digest or any other tag IfNotPresent.
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_container(container: JSON) -> None:
    if isinstance(container.get("image"), str) and "imagePullPolicy" not in container:
        container["imagePullPolicy"] = _pull_policy(container["image"])
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")


def default_pod_template(template: JSON) -> None:
    spec = template.setdefault("spec", {})
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)


def default_job(job: JSON, uid: str) -> None:
    """Fill defaults into ``job`` in place; ``uid`` is the new object's UID."""
    meta = job["metadata"]
    spec = job.setdefault("spec", {})
    # both unset means a non-parallel Job: both become 1; otherwise only parallelism
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("completions") is None:
        spec.pop("completions", None)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    if not isinstance(template_meta, dict):
        return
    if not spec.get("manualSelector"):
        generated = {
            CONTROLLER_UID: uid,
            JOB_NAME: meta["name"],
            LEGACY_CONTROLLER_UID: uid,
            LEGACY_JOB_NAME: meta["name"],
        }
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **generated}
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    template_meta.setdefault("creationTimestamp", None)
    default_pod_template(template)
    if not meta.get("labels") and template_meta.get("labels"):
        meta["labels"] = template_meta["labels"]  # shared: stored objects are immutable


def order_spec(spec: JSON) -> JSON:
    """Key order of ``JobSpec`` as the apiserver serialises it."""
    order = (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "podFailurePolicy",
        "successPolicy",
        "backoffLimit",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "selector",
        "manualSelector",
        "template",
        "ttlSecondsAfterFinished",
        "completionMode",
        "suspend",
        "podReplacementPolicy",
        "managedBy",
    )
    ordered = {k: spec[k] for k in order if k in spec}
    ordered.update({k: v for k, v in spec.items() if k not in ordered})
    return ordered
