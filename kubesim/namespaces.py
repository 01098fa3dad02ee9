"""The ``namespaces`` resource and its lifecycle.

Create/get/list/delete as ``pkg/registry/core/namespace`` does them: the
``kubernetes.io/metadata.name`` label and ``kubernetes`` finalizer are set on
create; a delete sets ``deletionTimestamp`` and phase ``Terminating`` and returns
the object; a second delete while terminating is a 409 Conflict; the protected
namespaces are refused by the NamespaceLifecycle admission plugin before anything
else. The namespace vanishes ``namespace_termination`` seconds after the delete.
"""

from __future__ import annotations

import copy

from kubesim import names, statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta
from kubesim.config import SimConfig
from kubesim.selectors import field_predicate, label_predicate
from kubesim.store import INITIAL_NAMESPACES, Record, Store, rfc3339

RESOURCE = "namespaces"
IMMORTAL = frozenset({"default", "kube-system", "kube-public"})
NAME_LABEL = "kubernetes.io/metadata.name"
_TERMINATING_WHY = (
    "The system is ensuring all content is removed from this namespace.  "
    "Upon completion, this namespace will automatically be purged by the system."
)
_DELETION_CONDITIONS = (
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
)


def new_namespace(store: Store, name: str, now: float, meta: JSON | None = None) -> Record:
    meta = meta or {}
    labels = dict(meta.get("labels") or {})
    labels[NAME_LABEL] = name
    metadata: JSON = {"name": name, "uid": store.new_uid(), "resourceVersion": store.next_rv()}
    metadata["creationTimestamp"] = rfc3339(now)
    metadata["labels"] = labels
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    obj: JSON = {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    return Record(obj=obj, created=now)


def seed(store: Store, now: float) -> None:
    for name in INITIAL_NAMESPACES:
        store.namespaces[name] = new_namespace(store, name, now)


def create(store: Store, call: Call) -> Reply:
    body = call.json_body(required=True)
    check_type_meta(body, "v1", "Namespace")
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    generate_name = str(meta.get("generateName") or "")
    if not name and generate_name:
        name = names.generate_unique(
            generate_name, lambda n: store.live_namespace(n, call.now) is not None
        )
    errors = names.validate_object_names(name, generate_name, label=True)
    if errors:
        raise statuses.invalid("Namespace", "", name, errors)
    existing = store.live_namespace(name, call.now)
    if existing is not None:
        raise statuses.already_exists(RESOURCE, "", name, being_deleted=existing.being_deleted)
    record = new_namespace(store, name, call.now, meta)
    if not call.dry_run:
        store.namespaces[name] = record
    return Reply(201, record.obj)


def _view(record: Record) -> JSON:
    obj = record.obj
    if record.being_deleted and "conditions" not in obj["status"]:
        obj = copy.deepcopy(obj)
        when = obj["metadata"]["deletionTimestamp"]
        obj["status"]["conditions"] = [
            {"type": t, "status": "False", "lastTransitionTime": when, "reason": r, "message": m}
            for t, r, m in _DELETION_CONDITIONS
        ]
    return obj


def get(store: Store, call: Call) -> Reply:
    record = store.live_namespace(call.info.name, call.now)
    if record is None:
        raise statuses.not_found(RESOURCE, "", call.info.name)
    return Reply(200, _view(record))


def list_all(store: Store, call: Call) -> Reply:
    by_label = label_predicate(call.query.get("labelSelector"))
    by_field = field_predicate(call.query.get("fieldSelector"))
    items = []
    for record in sorted(store.live_namespaces(call.now), key=lambda r: r.name):
        if by_label(record.obj) and by_field(record.obj):
            item = dict(_view(record))
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
    body: JSON = {
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": store.current_rv},
        "items": items,
    }
    return Reply(200, body)


def delete(store: Store, config: SimConfig, call: Call) -> Reply:
    name = call.info.name
    if name in IMMORTAL:
        raise statuses.forbidden(RESOURCE, "", name, "this namespace may not be deleted")
    record = store.live_namespace(name, call.now)
    if record is None:
        raise statuses.not_found(RESOURCE, "", name)
    if record.being_deleted:
        raise statuses.conflict(RESOURCE, "", name, _TERMINATING_WHY)
    if call.dry_run:
        preview = copy.deepcopy(record.obj)
        preview["metadata"]["deletionTimestamp"] = rfc3339(call.now)
        preview["status"]["phase"] = "Terminating"
        return Reply(200, preview)
    record.obj["metadata"]["resourceVersion"] = store.next_rv()
    meta = record.obj["metadata"]
    # deletionTimestamp sits before labels in ObjectMeta's field order
    rebuilt = {
        k: meta[k] for k in ("name", "uid", "resourceVersion", "creationTimestamp") if k in meta
    }
    rebuilt["deletionTimestamp"] = rfc3339(call.now)
    rebuilt.update({k: v for k, v in meta.items() if k not in rebuilt})
    record.obj["metadata"] = rebuilt
    record.obj["status"]["phase"] = "Terminating"
    record.gone_at = call.now + config.namespace_termination
    store.drop_jobs(name)
    return Reply(200, record.obj)


def require_active(store: Store, call: Call, resource: str, group: str, name: str) -> None:
    """NamespaceLifecycle admission for creates of namespaced objects."""
    namespace = call.info.namespace
    record = store.live_namespace(namespace, call.now)
    if record is None:
        raise statuses.not_found(RESOURCE, "", namespace)
    if record.being_deleted:
        cause = {
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace",
        }
        why = (
            f"unable to create new content in namespace {namespace} because it is being terminated"
        )
        raise statuses.forbidden(resource, group, name, why, causes=[cause])
