"""Tenant quotas, enforced before enqueue: submission rate, requests in flight, bulk size.

* **Rate**: a token bucket per tenant in Redis (``eksops:tenant:<name>:bucket``), one
  Lua step that refills by the server's clock (``TIME``), so every gateway process and
  library caller of the tenant share one budget. A submitting call (single or bulk)
  costs one token; refused, it says when the next token comes (``Retry-After``).
* **In flight**: the tenant's requests submitted and not yet ended, counted exactly in
  a sorted set (``eksops:tenant:<name>:open``, request ID → submit time). Admission
  adds the new IDs in one Lua step that refuses them together if they would go over.
  Nothing has to remove an ID when its request ends: only when the set is full does
  admission look at its members (one pipelined read of their results and records) and
  drop those that have ended (succeeded, failed, cancelled, or expired). Under the
  limit the check costs one script call; at the limit, one read per member.
* **Bulk size**: the largest number of items in one bulk submission.

Refusals raise :class:`~worker.errors.QuotaExceeded` (429) naming the quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from celery import states

from producer.batches import read_metas
from worker.errors import QuotaExceeded
from worker.records import Field, record_key
from worker.tenants import Tenant

_PREFIX = "eksops:tenant:"
# A request admitted this recently may not have its record yet: never pruned as expired.
_RECORD_GRACE_SECONDS = 30.0

# KEYS[1]: the bucket. ARGV: rate per second, size, cost. Returns '0' when taken, else
# the seconds until enough tokens are back (a string: Lua numbers become integers).
_TAKE = """
local rate, size, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or size
local at = tonumber(state[2]) or now
tokens = math.min(size, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(size / rate) + 1)
return tostring(wait)
"""

# KEYS[1]: the open set. ARGV[1]: limit, ARGV[2]: now, ARGV[3..]: request IDs. Adds the
# IDs not in the set yet if the set stays within the limit; returns the set's size
# after, or -1 (nothing added) when they would not fit.
_ADMIT = """
local new = {}
for i = 3, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then new[#new + 1] = ARGV[i] end
end
local size = redis.call('ZCARD', KEYS[1])
if size + #new > tonumber(ARGV[1]) then return -1 end
for _, id in ipairs(new) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return size + #new
"""


def bucket_key(tenant: str) -> str:
    """Return the Redis key of a tenant's submission token bucket."""
    return f"{_PREFIX}{tenant}:bucket"


def open_key(tenant: str) -> str:
    """Return the Redis key of a tenant's requests in flight."""
    return f"{_PREFIX}{tenant}:open"


class Quotas:
    """Checks and takes a tenant's quotas in Redis."""

    def __init__(self, redis: Any, backend: Any, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._backend = backend
        self._ttl = ttl_seconds
        self._take = redis.register_script(_TAKE)
        self._admit = redis.register_script(_ADMIT)

    def check_bulk_size(self, tenant: Tenant, items: int) -> None:
        """Raise QuotaExceeded if a bulk submission of ``items`` is over the tenant's limit."""
        limit = tenant.quotas.max_bulk_items
        if limit is not None and items > limit:
            raise QuotaExceeded(
                f"Tenant {tenant.name}: {items} items in one bulk submission; "
                f"the limit is {limit} (quotas.max_bulk_items)",
                details={"quota": "max_bulk_items", "limit": limit},
            )

    def take_submission(self, tenant: Tenant) -> None:
        """Take one submission token; raise QuotaExceeded with ``retry_after`` if none is left."""
        rate = tenant.quotas.submissions_per_second
        if rate is None:
            return
        size = tenant.quotas.bucket_size
        wait = float(self._take(keys=[bucket_key(tenant.name)], args=[rate, size, 1]))
        if wait > 0:
            raise QuotaExceeded(
                f"Tenant {tenant.name}: over {rate:g} submissions per second "
                f"(burst {size}; quotas.submissions_per_second); retry in {wait:.2f}s",
                details={"quota": "submissions_per_second", "limit": rate},
                retry_after=max(1, math.ceil(wait)),
            )

    def admit(self, tenant: Tenant, request_ids: Sequence[str]) -> None:
        """Count ``request_ids`` in flight; raise QuotaExceeded if they would go over."""
        limit = tenant.quotas.in_flight
        if limit is None or not request_ids:
            return
        key = open_key(tenant.name)
        if self._try_admit(key, limit, request_ids):
            return
        self.prune(tenant)
        if self._try_admit(key, limit, request_ids):
            return
        raise QuotaExceeded(
            f"Tenant {tenant.name}: {limit} requests in flight already "
            f"(quotas.in_flight); {len(request_ids)} more do not fit until some end",
            details={"quota": "in_flight", "limit": limit},
            retry_after=1,
        )

    def _try_admit(self, key: str, limit: int, request_ids: Sequence[str]) -> bool:
        size = int(self._admit(keys=[key], args=[limit, time.time(), *request_ids]))
        if size >= 0:
            self._redis.expire(key, self._ttl)
        return size >= 0

    def in_flight(self, tenant: Tenant) -> int:
        """Return how many of the tenant's requests have not ended (after a prune)."""
        self.prune(tenant)
        return int(self._redis.zcard(open_key(tenant.name)))

    def prune(self, tenant: Tenant) -> int:
        """Drop the tenant's requests that have ended from its in-flight set; return how many."""
        key = open_key(tenant.name)
        members = self._redis.zrange(key, 0, -1, withscores=True)
        if not members:
            return 0
        ids = [m.decode() if isinstance(m, bytes) else m for m, _ in members]
        pipe = self._redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hmget(record_key(rid), Field.SUBMITTED_AT, Field.CANCELLED_AT)
        records = pipe.execute()
        metas = read_metas(self._backend, ids)
        now = time.time()
        ended = [
            rid
            for rid, (_, admitted), (submitted, cancelled), meta in zip(
                ids, members, records, metas, strict=True
            )
            if meta.get("status") in states.READY_STATES
            or cancelled
            or (not submitted and now - admitted > _RECORD_GRACE_SECONDS)
        ]
        if ended:
            self._redis.zrem(key, *ended)
        return len(ended)
