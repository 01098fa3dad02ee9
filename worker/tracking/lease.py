"""One tracker per cluster in the whole fleet: a lease in Redis, with fencing.

Every worker process asks for each cluster's lease; the one that gets it tracks the
cluster and renews the lease every second; the lease lapses ``ttl`` seconds after its
holder stops renewing (killed, hung, cut off), and another process takes it. Each
acquisition has a holder name of its own, and every write of a tracker checks, in the
same script, that the lease still names it: a tracker that lost its lease (paused
past the TTL, then woken) can write nothing, so two trackers never both write.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from worker.jobrecords import lease_key, tracker_key

# KEYS: lease, tracker hash. ARGV: holder, ttl ms. The epoch counts acquisitions.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local epoch = redis.call('HINCRBY', KEYS[2], 'epoch', 1)
  redis.call('HSET', KEYS[2], 'holder', ARGV[1])
  return epoch
end
return 0
"""
# KEYS: lease. ARGV: holder, ttl ms. 1 if still ours (renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def holder_name() -> str:
    """Return a name for one acquisition, unique across the fleet."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TrackerLease:
    """The lease of one cluster's tracker, as one process sees it."""

    def __init__(self, redis: Any, cluster: str, *, ttl_seconds: float) -> None:
        self.cluster = cluster
        self.key = lease_key(cluster)
        self.ttl_ms = int(ttl_seconds * 1000)
        self.holder = holder_name()
        self.epoch = 0
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; a new holder name for each acquisition."""
        self.holder = holder_name()
        epoch = int(
            self._acquire(
                keys=[self.key, tracker_key(self.cluster)], args=[self.holder, self.ttl_ms]
            )
        )
        self.epoch = epoch
        return epoch > 0

    def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours."""
        return bool(self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))

    def release(self) -> None:
        """Give the lease up now (a clean stop), if it is still ours."""
        self._release(keys=[self.key], args=[self.holder])
