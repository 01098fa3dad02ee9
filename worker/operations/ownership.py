"""Tenants' objects in the cluster: labelled at creation, invisible to other tenants.

What a tenant creates through eksops carries ``eksops.io/tenant: <name>`` (the producer
puts it on a Job and its pod template; :func:`tenant_labels` on a namespace). A request
made for a tenant that names an object labelled for *another* tenant gets the answer
of a missing object (:func:`refuse_foreign`): the same ``NotFound`` the Kubernetes API
gives, so another tenant's Job or namespace is neither read, deleted nor confirmed to
exist. Objects without the label (made by trusted producers, or before tenants) are
governed by the tenant's scope alone, checked before enqueue.
"""

from __future__ import annotations

from typing import Any

from worker.contracts import TENANT_LABEL
from worker.errors import NotFound

#: The Kubernetes resource name (as in its ``not found`` message) of each kind.
_RESOURCE = {"jobs": "jobs.batch", "namespaces": "namespaces", "pods": "pods"}


def tenant_labels(tenant: str | None) -> dict[str, str]:
    """Return the label that marks an object as ``tenant``'s (none without a tenant)."""
    return {TENANT_LABEL: tenant} if tenant else {}


def owner_of(obj: dict[str, Any]) -> str | None:
    """Return the tenant an object is labelled for, if any."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    owner = labels.get(TENANT_LABEL)
    return str(owner) if owner else None


def refuse_foreign(obj: dict[str, Any], *, tenant: str | None, kind: str, name: str) -> None:
    """Raise the API's NotFound if ``obj`` is labelled for a tenant other than ``tenant``."""
    owner = owner_of(obj)
    if tenant is None or owner is None or owner == tenant:
        return
    resource = _RESOURCE.get(kind, kind)
    raise NotFound(
        f'{resource} "{name}" not found',
        404,
        "NotFound",
        {"reason": "NotFound", "name": name, "kind": kind},
    )
