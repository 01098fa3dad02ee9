"""The ``pods`` resource: Pods created through the API, and what an update may change.

Pods are mostly made by the Job controller, but ``kubectl run`` creates them
directly: decoded against the Pod schema, defaulted like a template
(``pkg/apis/core/v1/defaults.go``), validated (containers, restartPolicy), admitted
into an active namespace, then handed to the kubelet with a plan from their own
annotations. An update may change labels, annotations and a few spec fields only;
anything else is the long Forbidden of ``ValidatePodUpdate``
(``pkg/apis/core/validation/validation.go``).
"""

from __future__ import annotations

import copy

from kubesim import names, namespaces, schema, statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta, warning_header
from kubesim.jobcontroller import default_pod_spec
from kubesim.jobdefaults import default_pod_template
from kubesim.podstatus import qos_class
from kubesim.statuses import FORBIDDEN_FIELD, FieldError, not_supported
from kubesim.store import Store, rfc3339
from kubesim.validation import _containers

RESOURCE, KIND = "pods", "Pod"
_RESTART = ("Always", "OnFailure", "Never")
UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def create(store: Store, call: Call) -> tuple[Reply, JSON | None]:
    """Create a Pod; returns the reply and the stored Pod (None for a dry run)."""
    body = call.json_body(required=True)
    check_type_meta(body, "v1", KIND)
    strict = call.query.get("fieldValidation") == "Strict"
    checked = {**body, "apiVersion": "v1", "kind": KIND}
    decoded = schema.decode(checked, filename="pod-v1.json", kind=KIND, version="v1", strict=strict)
    if call.query.get("fieldValidation") == "Ignore":
        decoded.warnings.clear()
    meta_in = checked.get("metadata") or {}
    namespace = call.info.namespace
    name = str(meta_in.get("name") or "")
    namespaces.require_active(store, call, RESOURCE, "", name)
    if not name and meta_in.get("generateName"):
        name = names.generate_unique(
            str(meta_in["generateName"]), lambda n: store.get(RESOURCE, namespace, n) is not None
        )
    metadata: JSON = {"name": name}
    if meta_in.get("generateName"):
        metadata["generateName"] = meta_in["generateName"]
    metadata.update(
        {
            "namespace": namespace,
            "uid": store.new_uid(),
            "resourceVersion": "",
            "creationTimestamp": rfc3339(call.now),
        }
    )
    for key in ("labels", "annotations", "ownerReferences", "finalizers"):
        if meta_in.get(key):
            metadata[key] = copy.deepcopy(meta_in[key])
    template = {"spec": copy.deepcopy(checked.get("spec") or {})}
    default_pod_template(template)
    pod: JSON = {
        "kind": KIND,
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": default_pod_spec(template["spec"]),
    }
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
    errors = names.validate_object_names(name, str(meta_in.get("generateName") or ""), label=False)
    errors += _containers(pod["spec"], "spec")
    policy = pod["spec"].get("restartPolicy")
    if policy not in _RESTART:
        errors.append(not_supported("spec.restartPolicy", policy, _RESTART))
    if errors:
        raise statuses.invalid(KIND, "", name, errors)
    if store.get(RESOURCE, namespace, name) is not None:
        raise statuses.already_exists(RESOURCE, "", name, being_deleted=False)
    headers = warning_header(decoded.warnings)
    if call.dry_run:
        del pod["metadata"]["resourceVersion"]
        return Reply(201, pod, headers), None
    stored = store.commit(RESOURCE, pod).obj
    return Reply(201, stored, headers), stored


def validate_update(old: JSON, new: JSON) -> list[FieldError]:
    old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for spec in (old_spec, new_spec):
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(key, None)
        for key in ("containers", "initContainers"):
            spec[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(key) or []]
    if old_spec != new_spec:
        return [FieldError(FORBIDDEN_FIELD, "spec", detail=UPDATE_FORBIDDEN)]
    return []
