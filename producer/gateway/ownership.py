"""Another tenant's requests, batches and event streams read as not found.

A caller confined to a tenant sees only what that tenant submitted: a request ID or
batch ID of another tenant (or of a trusted producer that named none) answers exactly
as a missing one does, status code and text, so a guessed ID tells nothing about
whether it exists. The unrestricted tenant (``GATEWAY_API_KEYS``, or no keys) sees
everything, as before tenants existed. Each check is one ``HMGET``.
"""

from __future__ import annotations

import anyio.to_thread

from producer.batches import batch_owner
from producer.gateway.service import Gateway
from worker.errors import UnknownRequest
from worker.records import Field, record_key
from worker.tenants import Tenant


def request_unknown(request_id: str) -> UnknownRequest:
    """Return the error of a request ID that was never submitted (or expired)."""
    return UnknownRequest(
        f"Request {request_id} is unknown: never submitted, or its result expired"
    )


def batch_unknown(batch_id: str) -> UnknownRequest:
    """Return the error of a batch ID that was never submitted (or expired)."""
    return UnknownRequest(f"Batch {batch_id} is unknown: never submitted, or it expired")


async def owns_request(service: Gateway, tenant: Tenant, request_id: str) -> bool:
    """Return whether ``tenant`` may see request ``request_id`` (False also when missing)."""
    if tenant.unrestricted:
        return True
    redis = service.eksops.redis
    submitted, owner = await anyio.to_thread.run_sync(
        lambda: redis.hmget(record_key(request_id), Field.SUBMITTED_AT, Field.TENANT)
    )
    if submitted is None:
        return False
    return tenant.may_see(owner.decode() if isinstance(owner, bytes) else owner)


async def owns_batch(service: Gateway, tenant: Tenant, batch_id: str) -> bool:
    """Return whether ``tenant`` may see batch ``batch_id`` (False also when missing)."""
    if tenant.unrestricted:
        return True
    exists, owner = await anyio.to_thread.run_sync(
        lambda: batch_owner(service.eksops.redis, batch_id)
    )
    return exists and tenant.may_see(owner)


async def require_request(service: Gateway, tenant: Tenant, request_id: str) -> None:
    """Raise UnknownRequest unless ``tenant`` may see the request."""
    if not await owns_request(service, tenant, request_id):
        raise request_unknown(request_id)


async def require_batch(service: Gateway, tenant: Tenant, batch_id: str) -> None:
    """Raise UnknownRequest unless ``tenant`` may see the batch."""
    if not await owns_batch(service, tenant, batch_id):
        raise batch_unknown(batch_id)
