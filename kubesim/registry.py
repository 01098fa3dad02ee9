"""The generic REST verbs over the store: get, create, update, patch, delete.

What ``staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go`` and
the handlers in ``pkg/endpoints/handlers`` do for every served kind, with the
per-kind rules (``jobs``, ``pods``, ``namespaces``) plugged in:

* update/patch: a ``resourceVersion`` that is not the stored one is a 409 Conflict
  "the object has been modified; please apply your changes to the latest version
  and try again"; the name in the body must match the URL; the main resource keeps
  the old ``status`` and the ``/status`` subresource keeps the old spec and
  metadata (``PrepareForUpdate`` of the strategies); system metadata (uid,
  creationTimestamp, deletionTimestamp...) cannot be changed; ``generation`` goes up
  when the spec changed; an update that changes nothing writes nothing;
* delete: ``preconditions`` (uid, resourceVersion) are checked first (409 "the
  UID in the precondition (x) does not match the UID in record (y). The object
  might have been deleted and then recreated" / "...ResourceVersion..."),
  ``dryRun`` deletes nothing, and the propagation policy and grace period go to
  ``kubesim.gc``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from kubesim import (
    apply,
    jobs,
    namespaces,
    negotiation,
    options,
    patching,
    pods,
    statuses,
)
from kubesim.calls import JSON, Call, Reply, warning_header
from kubesim.events import from_events_v1
from kubesim.gc import delete_now_or_finalize
from kubesim.jobcontroller import delete_pod
from kubesim.kinds import Kind
from kubesim.lists import object_view
from kubesim.statuses import INVALID, FieldError

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
    "name",
    "selfLink",
)


def find(cluster: Cluster, kind: Kind, call: Call) -> JSON:
    namespace = call.info.namespace if kind.namespaced else ""
    obj = cluster.store.get(kind.table, namespace, call.info.name)
    if obj is None:
        raise statuses.not_found(kind.resource, kind.group, call.info.name)
    return obj


def get(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    return Reply(200, object_view(kind, find(cluster, kind, call)), kind=kind)


# --- create ---------------------------------------------------------------------------


def create(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    opts = options.write_options("create", call.query, call.query_all)
    store = cluster.store
    if kind.table == "namespaces":
        return namespaces.create(store, call)
    if kind.table == "jobs":
        return jobs.create(store, call)
    if kind.table == "pods":
        reply, stored = pods.create(store, call)
        if stored is not None:
            cluster.admit_pod(stored, call.now)
        return reply
    body = call.json_body(required=True)
    if kind.group == "events.k8s.io":
        body = from_events_v1(body)
    namespaces.require_active(store, call, kind.resource, kind.group, "")
    meta = dict(body.get("metadata") or {})
    if not meta.get("name"):
        raise statuses.invalid(
            kind.kind,
            kind.group,
            "",
            [
                FieldError(
                    statuses.REQUIRED, "metadata.name", detail="name or generateName is required"
                )
            ],
        )
    meta.update({"namespace": call.info.namespace, "uid": store.new_uid(), "resourceVersion": ""})
    from kubesim.store import rfc3339  # noqa: PLC0415

    meta["creationTimestamp"] = rfc3339(call.now)
    event = {**body, "kind": "Event", "apiVersion": "v1", "metadata": meta}
    if store.get("events", meta["namespace"], meta["name"]) is not None:
        raise statuses.already_exists(kind.resource, kind.group, meta["name"], being_deleted=False)
    if opts.dry_run:
        return Reply(201, object_view(kind, event), kind=kind)
    stored = store.commit("events", event).obj
    cluster.recorder.adopt(stored)
    return Reply(201, object_view(kind, stored), kind=kind)


# --- update -----------------------------------------------------------------------------


def _merge_update(  # noqa: PLR0917 - keyword use at every call site
    kind: Kind, old: JSON, new: JSON, subresource: str, manager: str, operation: str, now: float
) -> JSON:
    """What the strategy keeps from ``old`` in an update of ``new``."""
    old_meta, new_meta = old["metadata"], dict(new.get("metadata") or {})
    if subresource == "status":
        merged = {**old, "status": new.get("status", old.get("status"))}
        meta = dict(old_meta)
    else:
        merged = {**new}
        merged["kind"], merged["apiVersion"] = old.get("kind"), old.get("apiVersion")
        if "status" in old and kind.table != "events":
            merged["status"] = old["status"]
        meta = {
            k: v for k, v in new_meta.items() if k not in _SYSTEM_META and k != "resourceVersion"
        }
        ordered = {}
        for key in (
            "name",
            "generateName",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if key in old_meta:
                ordered[key] = old_meta[key]
        if "generateName" in old_meta and "generateName" not in new_meta:
            pass
        ordered.update(meta)
        meta = ordered
        if kind.table == "namespaces":
            labels = dict(meta.get("labels") or {})
            labels[namespaces.NAME_LABEL] = old_meta["name"]
            meta["labels"] = labels
            spec_finalizers = (new.get("spec") or {}).get("finalizers")
            if subresource != "finalize":
                merged["spec"] = old.get("spec")
            elif spec_finalizers is not None:
                merged["spec"] = {**(old.get("spec") or {}), "finalizers": spec_finalizers}
    changed_spec = subresource == "" and merged.get("spec") != old.get("spec")
    if changed_spec and "generation" in old_meta:
        meta["generation"] = int(old_meta["generation"]) + 1
    merged["metadata"] = apply.record_update(
        meta, old_meta, manager, operation, kind.group_version, subresource, now, merged, old
    )
    return merged


def _check_version(kind: Kind, old: JSON, new: JSON) -> None:
    rv = (new.get("metadata") or {}).get("resourceVersion")
    if rv and rv != old["metadata"].get("resourceVersion"):
        raise statuses.conflict_modified(kind.resource, kind.group, old["metadata"]["name"])


def _validate(kind: Kind, old: JSON, new: JSON) -> None:
    errors: list[FieldError] = []
    if kind.table == "jobs":
        errors = jobs.validate_update(old, new)
    elif kind.table == "pods":
        errors = pods.validate_update(old, new)
    meta = new["metadata"]
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63:
            errors.append(
                FieldError(INVALID, "metadata.labels", value, "must be no more than 63 characters")
            )
        del key
    if errors:
        raise statuses.invalid(kind.kind, kind.group, meta["name"], errors)


def _store_update(cluster: Cluster, kind: Kind, old: JSON, new: JSON, dry_run: bool) -> JSON:
    if _same(old, new):
        return old
    if dry_run:
        return new
    stored = cluster.store.commit(kind.table, new).obj
    if kind.table in {"pods", "jobs"}:
        _finalize_if_done(cluster, kind, stored, call_now=None)
    return stored


def _finalize_if_done(cluster: Cluster, kind: Kind, obj: JSON, call_now: float | None) -> None:
    """An object being deleted whose last finalizer was just removed goes now."""
    meta = obj["metadata"]
    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
        if kind.table == "pods" and cluster.kubelet.runs.get(meta["uid"]):
            return
        from kubesim.store import key_of  # noqa: PLC0415

        cluster.store.commit(kind.table, None, key=key_of(obj))
    del call_now


def _same(old: JSON, new: JSON) -> bool:
    def strip(obj: JSON) -> JSON:
        meta = {
            k: v
            for k, v in obj["metadata"].items()
            if k not in ("resourceVersion", "managedFields")
        }
        return {**obj, "metadata": meta}

    return strip(old) == strip(new)


def _name_check(kind: Kind, call: Call, body: JSON) -> None:
    meta = body.get("metadata") or {}
    name = meta.get("name")
    if name and name != call.info.name:
        raise statuses.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({call.info.name})"
        )
    namespace = meta.get("namespace")
    if kind.namespaced and namespace and namespace != call.info.namespace:
        raise statuses.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def update(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    opts = options.write_options("update", call.query, call.query_all)
    body = call.json_body(required=True)
    if kind.group == "events.k8s.io":
        body = from_events_v1(body)
    _name_check(kind, call, body)
    old = find(cluster, kind, call)
    warnings: list[str] = []
    if kind.table == "jobs":
        body, decoded = jobs.decode(call, body)
        warnings = decoded.warnings
    _check_version(kind, old, body)
    merged = _merge_update(
        kind,
        old,
        body,
        call.info.subresource,
        opts.field_manager or _agent(call),
        "Update",
        call.now,
    )
    _validate(kind, old, merged)
    stored = _store_update(cluster, kind, old, merged, opts.dry_run)
    return Reply(200, object_view(kind, stored), warning_header(warnings), kind=kind)


def _agent(call: Call) -> str:
    return call.query.get("_agent", "") or "unknown"


# --- patch --------------------------------------------------------------------------------


def patch(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    patch_type, _ = negotiation.media_type(call.content_type)
    if patch_type not in negotiation.PATCH_TYPES:
        raise negotiation.unsupported_media_type(negotiation.PATCH_TYPES)
    opts = options.write_options("patch", call.query, call.query_all, patch_type)
    if not call.raw_body.strip():
        raise statuses.bad_request("the body of the request was in an unknown format")
    patch_doc = negotiation.decode_body(call.raw_body, patch_type)
    store = cluster.store
    namespace = call.info.namespace if kind.namespaced else ""
    old = store.get(kind.table, namespace, call.info.name)
    manager = opts.field_manager or _agent(call)
    if patch_type == "application/apply-patch+yaml":
        if not isinstance(patch_doc, dict):
            raise statuses.bad_request(
                "error decoding YAML: the applied configuration is not an object"
            )
        if old is None:
            return _apply_create(cluster, kind, call, patch_doc, manager, opts)
        current = object_view(kind, old)
        result = apply.apply(
            current,
            patch_doc,
            manager,
            force=opts.force,
            kind=kind,
            subresource=call.info.subresource,
            now=call.now,
        )
        patched = result
    else:
        if old is None:
            raise statuses.not_found(kind.resource, kind.group, call.info.name)
        current = copy.deepcopy(object_view(kind, old))
        patched = patching.apply_patch(current, patch_doc, patch_type, kind)
    if kind.group == "events.k8s.io":
        patched = from_events_v1(patched)
    assert old is not None
    _name_check(kind, call, patched)
    _check_version(kind, old, patched)
    operation = "Apply" if patch_type == "application/apply-patch+yaml" else "Update"
    if operation == "Apply":
        merged = _merge_update(kind, old, patched, call.info.subresource, "", "Apply", call.now)
        merged["metadata"]["managedFields"] = patched["metadata"].get("managedFields", [])
        if not merged["metadata"]["managedFields"]:
            del merged["metadata"]["managedFields"]
    else:
        merged = _merge_update(
            kind, old, patched, call.info.subresource, manager, "Update", call.now
        )
    if kind.table == "jobs":
        _, decoded = jobs.decode(call, merged)
        del decoded
    _validate(kind, old, merged)
    stored = _store_update(cluster, kind, old, merged, opts.dry_run)
    return Reply(200, object_view(kind, stored), kind=kind)


def _apply_create(  # noqa: PLR0917 - keyword use at every call site
    cluster: Cluster, kind: Kind, call: Call, doc: JSON, manager: str, opts: options.WriteOptions
) -> Reply:
    """Server-side apply of an object that does not exist: a create with managedFields."""
    meta = doc.get("metadata") or {}
    if not meta.get("name"):
        meta = {**meta, "name": call.info.name}
    body = {**doc, "metadata": meta}
    import orjson  # noqa: PLC0415

    sub = Call(
        call.info,
        call.query,
        orjson.dumps(body),
        call.user,
        call.now,
        "application/json",
        call.query_all,
    )
    reply = create(cluster, kind, sub)
    if opts.dry_run:
        return Reply(201, reply.body, reply.headers, kind=kind)
    stored = reply.body
    fields = apply.fields_of(doc, kind.definition)
    managed = [apply.entry(manager, "Apply", kind.group_version, fields, call.now)]
    with_fields = {**stored, "metadata": {**stored["metadata"], "managedFields": managed}}
    if kind.group == "events.k8s.io":
        with_fields = from_events_v1(with_fields)
    final = cluster.store.commit(kind.table, with_fields).obj
    return Reply(201, object_view(kind, final), reply.headers, kind=kind)


# --- delete ----------------------------------------------------------------------------------


def delete(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    body = call.json_body(required=False) if call.raw_body.strip() else {}
    opts = options.delete_options(body, call.query, call.query_all)
    obj = find(cluster, kind, call)
    meta = obj["metadata"]
    expected_uid = opts.preconditions.get("uid")
    if expected_uid and expected_uid != meta.get("uid"):
        raise _precondition(
            kind,
            meta,
            f"Precondition failed: UID in precondition: {expected_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    expected_rv = opts.preconditions.get("resourceVersion")
    if expected_rv and expected_rv != meta.get("resourceVersion"):
        raise _precondition(
            kind,
            meta,
            f"Precondition failed: ResourceVersion in precondition: {expected_rv}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
        )
    store = cluster.store
    if kind.table == "namespaces":
        return namespaces.delete(store, call, obj, opts.dry_run)
    headers: dict[str, str] = {}
    policy = opts.propagation
    if kind.table == "jobs" and not policy:
        headers = warning_header([jobs.DEFAULT_POLICY_WARNING])
        policy = "Orphan"
    policy = policy or "Background"
    if kind.table == "pods":
        if opts.dry_run:
            return Reply(200, obj, kind=kind)
        marked = delete_pod(store, cluster.kubelet, obj, call.now, opts.grace_seconds)
        if marked is None:
            return Reply(200, obj, kind=kind)
        return Reply(200, marked, kind=kind)
    if opts.dry_run:
        if meta.get("finalizers") or policy in ("Foreground", "Orphan"):
            preview = {
                **obj,
                "metadata": {
                    **meta,
                    "deletionTimestamp": meta.get("deletionTimestamp") or _stamp(call.now),
                    "deletionGracePeriodSeconds": 0,
                },
            }
            return Reply(200, object_view(kind, preview), headers, kind=kind)
        return Reply(
            200, statuses.success(kind.resource, kind.group, meta["name"], meta["uid"]), headers
        )
    last, gone = delete_now_or_finalize(store, kind.table, obj, call.now, propagation=policy)
    if gone and kind.table != "pods":
        status = statuses.success(kind.resource, kind.group, meta["name"], meta["uid"])
        return Reply(200, status, headers)
    return Reply(200, object_view(kind, last), headers, kind=kind)


def _precondition(kind: Kind, meta: JSON, why: str) -> statuses.ApiError:
    """A failed precondition: the storage layer's invalid-object error inside a 409."""
    path = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    storage = (
        f"StorageError: invalid object, Code: 4, Key: /registry/{kind.table}/{path}, "
        f"ResourceVersion: 0, AdditionalErrorMsg: {why}"
    )
    return statuses.conflict(kind.resource, kind.group, meta["name"], storage)


def _stamp(now: float) -> str:
    from kubesim.store import rfc3339  # noqa: PLC0415

    return rfc3339(now)


def delete_collection(cluster: Cluster, kind: Kind, call: Call) -> Reply:
    from kubesim.lists import list_objects  # noqa: PLC0415

    listed = list_objects(cluster.store, kind, call)
    for item in listed.body["items"]:
        sub = Call(
            call.info.__class__(
                **{**call.info.__dict__, "name": item["metadata"]["name"], "verb": "delete"}
            ),
            call.query,
            call.raw_body,
            call.user,
            call.now,
            call.content_type,
            call.query_all,
        )
        try:
            delete(cluster, kind, sub)
        except statuses.ApiError:
            continue
    items = [
        ({"kind": kind.kind, "apiVersion": kind.group_version, **item})
        for item in listed.body["items"]
    ]
    body = {**listed.body, "items": [object_view(kind, i) for i in items]}
    return Reply(200, body, kind=kind)
