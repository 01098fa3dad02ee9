"""The ``batch/v1`` ``jobs`` resource: create, get, list, delete, ``/status``.

Order of checks on create is the apiserver's: decode (400), NamespaceLifecycle
admission (404 missing namespace, 403 terminating), defaulting and validation
(422), then storage (409). Deletes follow the garbage-collector policies:
``Background`` removes the Job at once and answers a success Status; ``Foreground``
and ``Orphan`` (the batch/v1 default, with its warning, per
``pkg/registry/batch/job/storage/storage.go``) return the Job with a
``deletionTimestamp`` and finalizer; it disappears once its pods are gone.
"""

from __future__ import annotations

import base64
import copy

from kubesim import lifecycle, namespaces, schema, statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta
from kubesim.config import SimConfig
from kubesim.jobdefaults import default_job, order_spec
from kubesim.names import generate_unique
from kubesim.selectors import field_predicate, label_predicate
from kubesim.store import Record, Store, rfc3339
from kubesim.validation import merge, validate_job

RESOURCE, GROUP, KIND, API_VERSION = "jobs", "batch", "Job", "batch/v1"
_GC_DELAY = 0.05
_DEFAULT_POLICY_WARNING = (
    "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
    "to remove them or set propagationPolicy=Orphan to suppress this warning"
)
_POLICIES = ("Foreground", "Background", "Orphan")


def _warning_header(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {
        "Warning": ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings)
    }


def _build(store: Store, call: Call, body: JSON, name: str, uid: str) -> JSON:
    meta_in = body.get("metadata") or {}
    metadata: JSON = {"name": name}
    if meta_in.get("generateName"):
        metadata["generateName"] = meta_in["generateName"]
    metadata.update({"namespace": call.info.namespace, "uid": uid, "resourceVersion": ""})
    metadata["generation"] = 1
    metadata["creationTimestamp"] = rfc3339(call.now)
    for key in ("labels", "annotations", "ownerReferences", "finalizers"):
        if meta_in.get(key):
            metadata[key] = copy.deepcopy(meta_in[key])
    spec = copy.deepcopy(body.get("spec") or {})
    job: JSON = {"kind": KIND, "apiVersion": API_VERSION, "metadata": metadata, "spec": spec}
    default_job(job, uid)
    job["spec"] = order_spec(job["spec"])
    job["status"] = {}
    return job


def create(store: Store, config: SimConfig, call: Call) -> Reply:
    body = call.json_body(required=True)
    check_type_meta(body, API_VERSION, KIND)
    strict = call.query.get("fieldValidation") == "Strict"
    checked = {**body, "apiVersion": API_VERSION, "kind": KIND}
    decoded = schema.decode(
        checked, filename="job-batch-v1.json", kind=KIND, version="v1", strict=strict
    )
    if call.query.get("fieldValidation") == "Ignore":
        decoded.warnings.clear()
    body = checked
    meta = body.get("metadata") or {}
    namespace = call.info.namespace
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise statuses.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    requested_name = str(meta.get("name") or "")
    namespaces.require_active(store, call, RESOURCE, GROUP, requested_name)
    name = requested_name
    if not name and meta.get("generateName"):
        name = generate_unique(
            str(meta["generateName"]), lambda n: store.live_job(namespace, n, call.now) is not None
        )
    uid = store.new_uid()
    job = _build(store, call, body, name, uid)
    errors = merge(decoded.required, validate_job(job))
    if errors:
        raise statuses.invalid(KIND, GROUP, name, errors)
    existing = store.live_job(namespace, name, call.now)
    if existing is not None:
        raise statuses.already_exists(RESOURCE, GROUP, name, being_deleted=existing.being_deleted)
    outcome, duration = lifecycle.choose(job, config)
    if not call.dry_run:
        job["metadata"]["resourceVersion"] = store.next_rv()
        store.put_job(
            namespace, Record(obj=job, created=call.now, outcome=outcome, duration=duration)
        )
    else:
        del job["metadata"]["resourceVersion"]
    return Reply(201, job, _warning_header(decoded.warnings))


def _find(store: Store, call: Call) -> Record:
    record = store.live_job(call.info.namespace, call.info.name, call.now)
    if record is None:
        raise statuses.not_found(RESOURCE, GROUP, call.info.name)
    lifecycle.refresh(store, record, call.now)
    return record


def get(store: Store, call: Call) -> Reply:
    return Reply(200, _find(store, call).obj)


def list_jobs(store: Store, call: Call) -> Reply:
    by_label = label_predicate(call.query.get("labelSelector"))
    by_field = field_predicate(call.query.get("fieldSelector"))
    limit = int(call.query.get("limit") or 0)
    start_after = _decode_continue(call.query.get("continue"))
    scope = call.info.namespace or None
    items: list[JSON] = []
    more = ""
    for record in store.live_jobs(scope, call.now):
        key = f"{record.obj['metadata']['namespace']}/{record.name}"
        if start_after and key <= start_after:
            continue
        if not (by_label(record.obj) and by_field(record.obj)):
            continue
        if limit and len(items) >= limit:
            more = _encode_continue(
                f"{items[-1]['metadata']['namespace']}/{items[-1]['metadata']['name']}"
            )
            break
        lifecycle.refresh(store, record, call.now)
        item = {k: v for k, v in record.obj.items() if k not in ("kind", "apiVersion")}
        items.append(item)
    list_meta: JSON = {"resourceVersion": store.current_rv}
    if more:
        list_meta["continue"] = more
    return Reply(
        200, {"kind": "JobList", "apiVersion": API_VERSION, "metadata": list_meta, "items": items}
    )


def _encode_continue(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_continue(token: str | None) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise statuses.bad_request(f"continue key is not valid: {exc}") from exc


def _policy(call: Call) -> str:
    body = call.json_body(required=False)
    policy = call.query.get("propagationPolicy") or body.get("propagationPolicy") or ""
    orphan = body.get("orphanDependents", call.query.get("orphanDependents"))
    if policy and policy not in _POLICIES:
        raise statuses.invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            [statuses.not_supported("propagationPolicy", policy, _POLICIES)],
        )
    if not policy and orphan is not None:
        policy = "Orphan" if orphan in (True, "true") else "Background"
    return policy


def delete(store: Store, config: SimConfig, call: Call) -> Reply:
    policy = _policy(call)
    record = _find(store, call)
    headers = {} if policy else _warning_header([_DEFAULT_POLICY_WARNING])
    policy = policy or "Orphan"
    if call.dry_run:
        return Reply(200, record.obj, headers)
    if policy == "Background" and not record.being_deleted:
        store.remove_job(call.info.namespace, record.name)
        uid = record.obj["metadata"]["uid"]
        return Reply(200, statuses.success(RESOURCE, GROUP, record.name, uid), headers)
    if not record.being_deleted:
        finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"
        meta = record.obj["metadata"]
        before = {
            k: meta[k] for k in list(meta) if k in ("name", "generateName", "namespace", "uid")
        }
        after = {k: v for k, v in meta.items() if k not in before}
        after["resourceVersion"] = store.next_rv()
        after["generation"] = int(meta.get("generation", 1)) + 1
        stamped = {
            **before,
            **{k: after.pop(k) for k in ("resourceVersion", "generation", "creationTimestamp")},
        }
        stamped["deletionTimestamp"] = rfc3339(call.now)
        stamped["deletionGracePeriodSeconds"] = 0
        stamped.update(after)
        stamped["finalizers"] = [*meta.get("finalizers", []), finalizer]
        record.obj["metadata"] = stamped
        pods_linger = policy == "Foreground" and lifecycle.has_running_pods(record)
        record.gone_at = call.now + (config.pod_termination if pods_linger else _GC_DELAY)
    return Reply(200, record.obj, headers)
