"""Job operations: create (idempotent per request), read status, delete.

Create sends the Job first and creates the namespace only when the API says it is
missing, so the common case costs one API call. A Job that already exists with this
request's label was created by an earlier attempt (the worker died before acking), so
the retry reports that Job instead of failing or creating a second one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from worker.contracts import REQUEST_ID_LABEL, Deleted, JobCreated, JobState, JobStatus
from worker.errors import Conflict, NotFound
from worker.logs import log_operation
from worker.names import job_name_for_request
from worker.operations.clients import ClusterClient
from worker.operations.namespaces import FOREGROUND, auto_create_namespace, managed_labels
from worker.operations.ownership import refuse_foreign
from worker.timestamps import iso_timestamp

logger = logging.getLogger(__name__)


def jobs_path(namespace: str, name: str | None = None) -> str:
    """Return the REST path of a namespace's Jobs, or of one Job."""
    path = f"/apis/batch/v1/namespaces/{quote(namespace, safe='')}/jobs"
    return f"{path}/{quote(name, safe='')}" if name else path


def job_name(manifest: dict[str, Any], request_id: str) -> str:
    """Return the name the Job will have: its own, or one derived from the request ID."""
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name")
    if name:
        return str(name)
    return job_name_for_request(request_id, generate_name=metadata.get("generateName"))


def build_job_body(
    manifest: dict[str, Any],
    *,
    name: str,
    namespace: str,
    request_id: str,
    tenant: str | None = None,
) -> dict[str, Any]:
    """Return the manifest with its final name, namespace and eksops labels (tenant's too).

    ``manifest`` is left as it is: only the mappings on the way to what changes are
    copied (the containers and the rest are shared, and sent as they are).
    """
    labels = managed_labels(request_id, tenant)
    metadata = dict(manifest.get("metadata") or {})
    metadata.pop("generateName", None)
    metadata.update(
        name=name, namespace=namespace, labels={**(metadata.get("labels") or {}), **labels}
    )
    spec = dict(manifest["spec"])
    template = dict(spec.get("template") or {})
    pod_metadata = dict(template.get("metadata") or {})
    # The pods carry them too: the job tracker's one pod watch selects them by label.
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **labels}
    template["metadata"] = pod_metadata
    spec["template"] = template
    return {**manifest, "metadata": metadata, "spec": spec}


def _is_missing_namespace(error: NotFound) -> bool:
    return error.details.get("kind") == "namespaces"


def create_job(
    *,
    cluster: ClusterClient,
    request_id: str,
    manifest: dict[str, Any],
    namespace: str,
    tenant: str | None = None,
) -> JobCreated:
    """Create the Job of ``manifest`` in ``namespace`` (created first if missing)."""
    name = job_name(manifest, request_id)
    with log_operation(logger, "create_job", job=name, namespace=namespace):
        logger.debug("Step 1: Building job manifest for %s", name)
        body = build_job_body(
            manifest, name=name, namespace=namespace, request_id=request_id, tenant=tenant
        )
        logger.debug("Job manifest built with spec keys: %s", sorted(body["spec"]))
        logger.debug("Step 2: Sending create_namespaced_job request to Kubernetes API")
        try:
            job = _create_or_adopt(cluster, body, name, namespace, request_id)
        except NotFound as error:
            if not _is_missing_namespace(error):
                raise
            auto_create_namespace(cluster, namespace, request_id, tenant)
            logger.debug("Step 2 (again): Sending create_namespaced_job request to Kubernetes API")
            job = _create_or_adopt(cluster, body, name, namespace, request_id)
        metadata = job.get("metadata") or {}
        logger.debug("Kubernetes API returned response with metadata: %s", metadata.get("name"))
        logger.debug("Step 3: Formatting response")
        return JobCreated(
            job_name=metadata.get("name", name),
            namespace=metadata.get("namespace", namespace),
            creation_timestamp=iso_timestamp(metadata.get("creationTimestamp")) or "",
        )


def _create_or_adopt(
    cluster: ClusterClient, body: dict[str, Any], name: str, namespace: str, request_id: str
) -> dict[str, Any]:
    try:
        return cluster.request("POST", jobs_path(namespace), body=body)
    except Conflict:
        existing = cluster.request("GET", jobs_path(namespace, name))
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(REQUEST_ID_LABEL) != request_id:
            raise
        logger.info("Job %s was created by an earlier attempt of this request; reusing it", name)
        return existing


def job_state(job: dict[str, Any]) -> JobState:
    """Derive the seed's state from a Job: conditions first, then counters."""
    status = job.get("status") or {}
    spec = job.get("spec") or {}
    true_conditions = {
        c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    if true_conditions & {"Complete", "SuccessCriteriaMet"}:
        return "completed"
    if true_conditions & {"Failed", "FailureTarget"}:
        return "failed"
    if "Suspended" in true_conditions or spec.get("suspend"):
        return "suspended"
    if status.get("active"):
        return "running"
    if not status.get("startTime"):
        return "pending"
    if status.get("succeeded") and not status.get("failed"):
        return "completed"
    return "unknown"


def get_job_status(
    *, cluster: ClusterClient, name: str, namespace: str, tenant: str | None = None
) -> JobStatus:
    """Read Job ``name`` and report its state and counters."""
    with log_operation(logger, "get_job_status", job=name, namespace=namespace):
        logger.debug("Step 1: Sending read_namespaced_job request to Kubernetes API")
        try:
            job = cluster.request("GET", jobs_path(namespace, name))
            refuse_foreign(job, tenant=tenant, kind="jobs", name=name)
        except NotFound:
            logger.warning("Job %s not found in namespace %s", name, namespace)
            raise
        logger.debug("Kubernetes API returned job object with status field")
        logger.debug("Step 2: Analyzing job status to determine state")
        status = job.get("status") or {}
        state = job_state(job)
        logger.debug("Job state determined: %s (active=%s)", state, status.get("active", 0))
        logger.debug("Step 3: Extracting status fields")
        result = JobStatus(
            job_name=name,
            namespace=namespace,
            state=state,
            active=status.get("active") or 0,
            succeeded=status.get("succeeded") or 0,
            failed=status.get("failed") or 0,
            start_time=iso_timestamp(status.get("startTime")),
            completion_time=iso_timestamp(status.get("completionTime")),
        )
        logger.debug(
            "Status response formatted: state=%s, active=%d, succeeded=%d, failed=%d",
            result.state,
            result.active,
            result.succeeded,
            result.failed,
        )
        return result


def delete_job(
    *,
    cluster: ClusterClient,
    name: str,
    namespace: str,
    attempt: int = 1,
    tenant: str | None = None,
) -> Deleted:
    """Delete Job ``name`` with Foreground propagation, so its pods go too.

    For a tenant, the Job is read first: one labelled for another tenant is not found.
    """
    with log_operation(logger, "delete_job", job=name, namespace=namespace):
        logger.debug("Step 1: Sending delete_namespaced_job request to Kubernetes API")
        try:
            if tenant is not None:
                job = cluster.request("GET", jobs_path(namespace, name))
                refuse_foreign(job, tenant=tenant, kind="jobs", name=name)
            cluster.request("DELETE", jobs_path(namespace, name), query=FOREGROUND)
        except NotFound:
            if attempt == 1:
                logger.warning("Job %s not found in namespace %s", name, namespace)
                raise
            logger.info("Job %s is gone: deleted by an earlier attempt of this request", name)
        else:
            logger.debug("Kubernetes API confirmed job deletion")
        return Deleted(message=f"Job {name} deleted successfully")
