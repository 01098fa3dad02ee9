"""What a tenant's submission goes through before enqueue: scope, Job policy, quotas.

:class:`~producer.client.EksOps` calls this for every submission made on behalf of a
tenant (the gateway's callers, or a library/CLI caller that names one). Order, so the
cheapest refusal comes first and a refused request costs no quota:

1. scope (:meth:`worker.tenants.Scope.check`): out of scope raises ``OutOfScope``;
2. Job policy (:func:`worker.policy.apply`) for create-job: a violation raises
   ``PolicyViolation`` naming the field; defaults (``ttlSecondsAfterFinished``) are
   filled in, and the Job and its pods get the ``eksops.io/tenant`` label (a label the
   caller set is overwritten: a tenant cannot pass its Jobs off as another's). The
   request's ``tenant`` argument is set (the worker labels the namespaces it creates
   with it, and answers NotFound for objects labelled for another tenant);
3. quotas (:class:`producer.quotas.Quotas`): rate, then requests in flight.

For a bulk submission, 1 and 2 run per item (each refused item reported on its own),
the bulk size and one rate token are checked once for the call, and in-flight room is
taken part by part. The unrestricted tenant of ``GATEWAY_API_KEYS`` changes nothing:
single-key setups enqueue exactly what they did before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from producer.quotas import Quotas
from worker.contracts import TENANT_LABEL, Operation
from worker.policy import apply
from worker.tenants import Tenant


def applies_to(tenant: Tenant | None) -> bool:
    """Return whether submissions of ``tenant`` are checked and attributed."""
    return tenant is not None and not tenant.unrestricted


def label_manifest(manifest: dict[str, Any], tenant: str) -> dict[str, Any]:
    """Put the tenant label on the Job and on its pod template (in place; returned)."""
    metadata = manifest.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), TENANT_LABEL: tenant}
    template = manifest.setdefault("spec", {}).setdefault("template", {})
    pod_metadata = template.setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), TENANT_LABEL: tenant}
    return manifest


def check_request(
    tenant: Tenant, operation: Operation, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Return validated ``kwargs`` as the tenant's policy makes them, or raise why not."""
    tenant.scope.check(operation, kwargs)
    checked = {**kwargs, "tenant": tenant.name}  # the caller's own "tenant" never counts
    if operation is Operation.CREATE_JOB:
        manifest = apply(tenant.policy, checked["job_manifest"])
        checked["job_manifest"] = label_manifest(manifest, tenant.name)
    return checked


class Admission:
    """Takes a tenant's quotas for the requests it submits."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    def single(self, tenant: Tenant, request_id: str) -> None:
        """Take a rate token and an in-flight place for one request, or raise QuotaExceeded."""
        self.quotas.take_submission(tenant)
        self.quotas.admit(tenant, [request_id])

    def bulk(self, tenant: Tenant, size: int | None) -> None:
        """Check a bulk call's size (when known) and take its rate token."""
        if size is not None:
            self.quotas.check_bulk_size(tenant, size)
        self.quotas.take_submission(tenant)

    def part(self, tenant: Tenant, request_ids: Sequence[str]) -> None:
        """Take in-flight places for one part of a bulk submission, or raise QuotaExceeded."""
        self.quotas.admit(tenant, request_ids)
