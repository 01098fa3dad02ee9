"""The ``batch/v1`` ``jobs`` resource: create, and what an update may change.

Order of checks on create is the apiserver's: decode (400), NamespaceLifecycle
admission (404 missing namespace, 403 terminating), defaulting and validation
(422), then storage (409). The Job controller (``jobcontroller``) takes it from
there. On update, ``pkg/apis/batch/validation`` ``ValidateJobSpecUpdate`` makes
``selector``, ``completionMode``, ``podFailurePolicy``, ``backoffLimitPerIndex``
and - unless the Job is suspended - ``template`` immutable, and ``completions``
changeable only together with ``parallelism`` for Indexed Jobs.
"""

from __future__ import annotations

from kubesim import namespaces, schema, statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta, warning_header
from kubesim.jobdefaults import default_job, order_spec
from kubesim.names import generate_unique
from kubesim.sharing import ByContent
from kubesim.statuses import INVALID, FieldError
from kubesim.store import Store, rfc3339
from kubesim.validation import merge, validate_job

RESOURCE, GROUP, KIND, API_VERSION = "jobs", "batch", "Job", "batch/v1"
DEFAULT_POLICY_WARNING = (
    "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
    "to remove them or set propagationPolicy=Orphan to suppress this warning"
)
IMMUTABLE = "field is immutable"
_TEMPLATE_SPECS: ByContent[JSON] = ByContent()
"""Jobs made from one manifest share one (defaulted) pod template spec."""


def _build(call: Call, body: JSON, name: str, uid: str) -> JSON:
    """The stored Job; takes over (and defaults in place) the parts of ``body``.

    ``body`` is this request's own freshly decoded document, so nothing is copied.
    """
    meta_in = body.get("metadata") or {}
    metadata: JSON = {"name": name}
    if meta_in.get("generateName"):
        metadata["generateName"] = meta_in["generateName"]
    metadata.update({"namespace": call.info.namespace, "uid": uid, "resourceVersion": ""})
    metadata["generation"] = 1
    metadata["creationTimestamp"] = rfc3339(call.now)
    for key in ("labels", "annotations", "ownerReferences", "finalizers"):
        if meta_in.get(key):
            metadata[key] = meta_in[key]
    spec = body.get("spec") or {}
    job: JSON = {"kind": KIND, "apiVersion": API_VERSION, "metadata": metadata, "spec": spec}
    default_job(job, uid)
    job["spec"] = order_spec(job["spec"])
    template = job["spec"].get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        template["spec"] = _TEMPLATE_SPECS.intern(template["spec"])
    job["status"] = {}
    return job


def decode(call: Call, body: JSON) -> tuple[JSON, schema.DecodeResult]:
    check_type_meta(body, API_VERSION, KIND)
    strict = call.query.get("fieldValidation") == "Strict"
    checked = {**body, "apiVersion": API_VERSION, "kind": KIND}
    decoded = schema.decode(
        checked, filename="job-batch-v1.json", kind=KIND, version="v1", strict=strict
    )
    if call.query.get("fieldValidation") == "Ignore":
        decoded.warnings.clear()
    return checked, decoded


def create(store: Store, call: Call) -> Reply:
    body, decoded = decode(call, call.json_body(required=True))
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
            str(meta["generateName"]), lambda n: store.get(RESOURCE, namespace, n) is not None
        )
    uid = store.new_uid()
    job = _build(call, body, name, uid)
    errors = merge(decoded.required, validate_job(job))
    if errors:
        raise statuses.invalid(KIND, GROUP, name, errors)
    existing = store.get(RESOURCE, namespace, name)
    if existing is not None:
        being_deleted = bool(existing["metadata"].get("deletionTimestamp"))
        raise statuses.already_exists(RESOURCE, GROUP, name, being_deleted=being_deleted)
    headers = warning_header(decoded.warnings)
    if call.dry_run:
        del job["metadata"]["resourceVersion"]
        return Reply(201, job, headers)
    return Reply(201, store.commit(RESOURCE, job).obj, headers)


def validate_update(old: JSON, new: JSON) -> list[FieldError]:
    """``ValidateJobUpdate``'s immutable fields, then the create-time rules."""
    errors: list[FieldError] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for key in (
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "manualSelector",
    ):
        if old_spec.get(key) != new_spec.get(key):
            errors.append(FieldError(INVALID, f"spec.{key}", new_spec.get(key), IMMUTABLE))
    if old_spec.get("completions") != new_spec.get("completions"):
        elastic = new_spec.get("completionMode") == "Indexed" and (
            new_spec.get("completions") == new_spec.get("parallelism")
        )
        if not elastic:
            errors.append(
                FieldError(INVALID, "spec.completions", new_spec.get("completions"), IMMUTABLE)
            )
    if old_spec.get("template") != new_spec.get("template") and not (
        old_spec.get("suspend") and not (old.get("status") or {}).get("startTime")
    ):
        errors.append(FieldError(INVALID, "spec.template", new_spec.get("template"), IMMUTABLE))
    return errors + validate_job(new)
