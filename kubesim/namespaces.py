"""The ``namespaces`` resource: create, delete and the NamespaceLifecycle admission.

As ``pkg/registry/core/namespace`` does it: the ``kubernetes.io/metadata.name`` label
and ``kubernetes`` finalizer are set on create (``spec.finalizers`` given by the
caller are kept); a delete sets ``deletionTimestamp`` and phase ``Terminating`` and
returns the object; a second delete while terminating is a 409 Conflict; the
protected namespaces are refused by the NamespaceLifecycle admission plugin before
anything else. The namespace controller (``kubesim.gc``) empties it and removes it.
"""

from __future__ import annotations

import copy

from kubesim import names, statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta
from kubesim.gc import mark_deleting
from kubesim.store import INITIAL_NAMESPACES, Store, rfc3339

RESOURCE = "namespaces"
IMMORTAL = frozenset({"default", "kube-system", "kube-public"})
NAME_LABEL = "kubernetes.io/metadata.name"
TERMINATING_WHY = (
    "The system is ensuring all content is removed from this namespace.  "
    "Upon completion, this namespace will automatically be purged by the system."
)


def new_namespace(
    store: Store, name: str, now: float, meta: JSON | None = None, spec: JSON | None = None
) -> JSON:
    meta = meta or {}
    labels = dict(meta.get("labels") or {})
    labels[NAME_LABEL] = name
    metadata: JSON = {"name": name, "uid": store.new_uid(), "resourceVersion": ""}
    metadata["creationTimestamp"] = rfc3339(now)
    metadata["labels"] = labels
    for key in ("annotations", "finalizers", "ownerReferences"):
        if meta.get(key):
            metadata[key] = copy.deepcopy(meta[key])
    finalizers = list((spec or {}).get("finalizers") or [])
    if "kubernetes" not in finalizers:
        finalizers = ["kubernetes", *finalizers]
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"finalizers": finalizers},
        "status": {"phase": "Active"},
    }


def seed(store: Store, now: float) -> None:
    for name in INITIAL_NAMESPACES:
        store.commit(RESOURCE, new_namespace(store, name, now))


def create(store: Store, call: Call) -> Reply:
    body = call.json_body(required=True)
    check_type_meta(body, "v1", "Namespace")
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    generate_name = str(meta.get("generateName") or "")
    if not name and generate_name:
        name = names.generate_unique(
            generate_name, lambda n: store.get(RESOURCE, "", n) is not None
        )
    errors = names.validate_object_names(name, generate_name, label=True)
    if errors:
        raise statuses.invalid("Namespace", "", name, errors)
    existing = store.get(RESOURCE, "", name)
    if existing is not None:
        being_deleted = bool(existing["metadata"].get("deletionTimestamp"))
        raise statuses.already_exists(RESOURCE, "", name, being_deleted=being_deleted)
    obj = new_namespace(store, name, call.now, meta, body.get("spec"))
    if generate_name:
        obj["metadata"] = {
            "name": name,
            "generateName": generate_name,
            **{k: v for k, v in obj["metadata"].items() if k != "name"},
        }
    if call.dry_run:
        return Reply(201, obj)
    return Reply(201, store.commit(RESOURCE, obj).obj)


def delete(store: Store, call: Call, obj: JSON, dry_run: bool) -> Reply:
    name = call.info.name
    if name in IMMORTAL:
        raise statuses.forbidden(RESOURCE, "", name, "this namespace may not be deleted")
    if obj["metadata"].get("deletionTimestamp"):
        raise statuses.conflict(RESOURCE, "", name, TERMINATING_WHY)
    terminating = {
        **obj,
        "metadata": {
            k: v
            for k, v in mark_deleting(obj["metadata"], call.now).items()
            if k != "deletionGracePeriodSeconds"
        },
        "status": {**obj.get("status", {}), "phase": "Terminating"},
    }
    if dry_run:
        return Reply(200, terminating)
    return Reply(200, store.commit(RESOURCE, terminating).obj)


def require_active(store: Store, call: Call, resource: str, group: str, name: str) -> None:
    """NamespaceLifecycle admission for creates of namespaced objects."""
    namespace = call.info.namespace
    record = store.get(RESOURCE, "", namespace)
    if record is None:
        raise statuses.not_found(RESOURCE, "", namespace)
    if record["metadata"].get("deletionTimestamp"):
        cause = {
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace",
        }
        why = (
            f"unable to create new content in namespace {namespace} because it is being terminated"
        )
        raise statuses.forbidden(resource, group, name, why, causes=[cause])
