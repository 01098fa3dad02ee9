"""Namespace operations: create, ensure (for create-job), delete with protection.

Creation is idempotent per request ID: a namespace that already exists carrying this
request's label is the one an earlier attempt created, so the retry succeeds. Deletion
refuses protected namespaces before any API call, and refuses namespaces eksops did not
create unless the request explicitly allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from worker.contracts import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_ID_LABEL,
    Deleted,
    NamespaceCreated,
)
from worker.errors import Conflict, Forbidden, NotFound, ProtectedNamespace
from worker.logs import log_operation
from worker.names import protection_reason
from worker.operations.clients import ClusterClient
from worker.operations.ownership import refuse_foreign, tenant_labels
from worker.timestamps import iso_timestamp

logger = logging.getLogger(__name__)


# Deletes wait for dependents (a Job's pods, a namespace's objects), as the seed did.
FOREGROUND = {"propagationPolicy": "Foreground"}


def namespaces_path(name: str | None = None) -> str:
    """Return the REST path of the namespaces, or of one namespace."""
    return f"/api/v1/namespaces/{quote(name, safe='')}" if name else "/api/v1/namespaces"


def managed_labels(request_id: str, tenant: str | None = None) -> dict[str, str]:
    """Return the labels eksops puts on every object it creates (the tenant's, if any)."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        REQUEST_ID_LABEL: request_id,
        **tenant_labels(tenant),
    }


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _create(
    cluster: ClusterClient, name: str, request_id: str, tenant: str | None = None
) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": managed_labels(request_id, tenant)},
    }
    logger.debug("Namespace manifest created with name=%s", name)
    try:
        return cluster.request("POST", namespaces_path(), body=body)
    except Conflict:
        existing = cluster.request("GET", namespaces_path(name))
        if _labels(existing).get(REQUEST_ID_LABEL) != request_id:
            raise
        logger.info(
            "Namespace %s was created by an earlier attempt of this request; reusing it", name
        )
        return existing


def create_namespace(
    *, cluster: ClusterClient, request_id: str, name: str, tenant: str | None = None
) -> NamespaceCreated:
    """Create namespace ``name`` labelled with the request ID (and the tenant)."""
    with log_operation(logger, "create_namespace", namespace=name):
        logger.debug("Step 1: Building namespace manifest for %s", name)
        logger.debug("Step 2: Sending create_namespace request to Kubernetes API")
        namespace = _create(cluster, name, request_id, tenant)
        metadata = namespace.get("metadata") or {}
        logger.debug("Kubernetes API returned response with metadata: %s", metadata.get("name"))
        logger.debug("Step 3: Formatting response")
        return NamespaceCreated(
            namespace_name=metadata.get("name", name),
            creation_timestamp=iso_timestamp(metadata.get("creationTimestamp")) or "",
        )


def auto_create_namespace(
    cluster: ClusterClient, name: str, request_id: str, tenant: str | None = None
) -> None:
    """Create ``name`` for a Job whose namespace is missing; a concurrent create is fine."""
    logger.warning("Namespace %s not found. Creating it.", name)
    with log_operation(logger, "create_namespace", namespace=name, auto_created="true"):
        try:
            _create(cluster, name, request_id, tenant)
        except Conflict:
            logger.debug("Namespace %s appeared concurrently; using it", name)


def delete_namespace(
    *,
    cluster: ClusterClient,
    name: str,
    allow_unmanaged: bool,
    protected: Iterable[str] = (),
    attempt: int = 1,
    tenant: str | None = None,
) -> Deleted:
    """Delete namespace ``name`` with Foreground propagation, after the safety checks."""
    with log_operation(logger, "delete_namespace", namespace=name):
        reason = protection_reason(name, protected)
        if reason:
            raise ProtectedNamespace(
                f"Namespace {name} is protected ({reason}); eksops never deletes it",
                details={"namespace": name},
            )
        deleted = Deleted(message=f"Namespace {name} deleted successfully")
        try:
            namespace = cluster.request("GET", namespaces_path(name))
        except NotFound:
            if attempt > 1:
                logger.info(
                    "Namespace %s is gone: deleted by an earlier attempt of this request", name
                )
                return deleted
            raise
        refuse_foreign(namespace, tenant=tenant, kind="namespaces", name=name)
        if not allow_unmanaged and _labels(namespace).get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
            raise Forbidden(
                f"Namespace {name} was not created by eksops (no label "
                f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}); set allow_unmanaged to delete it anyway",
                code="UnmanagedNamespace",
                details={"namespace": name},
            )
        if (namespace.get("status") or {}).get("phase") == "Terminating" and attempt > 1:
            logger.info("Namespace %s is already terminating from an earlier attempt", name)
            return deleted
        logger.debug("Step 1: Sending delete_namespace request to Kubernetes API")
        cluster.request("DELETE", namespaces_path(name), query=FOREGROUND)
        logger.debug("Kubernetes API confirmed namespace deletion")
        return deleted
