"""Execution leases: at most one worker runs a given request at any moment.

Late acks make delivery at-least-once: a message comes back if its worker dies, and
also if a task outlives the broker's visibility timeout while its worker is alive.
Operations are idempotent, so a second run cannot double a Job, but two runs of one
request at the same time could still race (create vs. the adopt-on-409 read). A lease
prevents that: the execution that starts a request holds ``eksops:request:<id>:lease``
(taken atomically with the attempt count, see ``worker.records``), a background
thread renews every held lease, and the lease is released before a retry, or left to
expire once a final outcome is stored (which answers any later delivery first). A
killed worker stops renewing, so its lease expires after ``ttl`` and the redelivered
message can run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import redis as redis_lib

logger = logging.getLogger(__name__)

# KEYS: lease. ARGV: holder, ms. Extends the lease only if we still hold it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: holder. Deletes the lease only if we still hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseKeeper:
    """Renews the leases of this process's running tasks; releases them when done."""

    def __init__(self, client: Any, *, ttl_seconds: float = 30.0) -> None:
        self.ttl_ms = int(ttl_seconds * 1000)
        self._client = client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def new_holder() -> str:
        """Return a name for one execution, unique across the fleet."""
        return uuid.uuid4().hex

    def hold(self, key: str, holder: str) -> None:
        """Keep renewing ``key`` for ``holder`` until :meth:`release`."""
        with self._lock:
            self._held[key] = holder
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="eksops-leases", daemon=True)
                self._thread.start()

    def forget(self, key: str, holder: str) -> None:
        """Stop renewing without deleting: the lease expires by itself.

        For executions that stored a final outcome: any later delivery is answered by
        that outcome before it looks at the lease, so the round trip of a release
        would buy nothing.
        """
        with self._lock:
            if self._held.get(key) == holder:
                del self._held[key]

    def release(self, key: str, holder: str) -> None:
        """Stop renewing and delete the lease, if it is still ours."""
        with self._lock:
            if self._held.get(key) == holder:
                del self._held[key]
        try:
            self._release(keys=[key], args=[holder])
        except redis_lib.RedisError as exc:  # it expires by itself
            logger.warning("Could not release lease %s (%s); it will expire", key, exc)

    def _run(self) -> None:
        interval = self.ttl_ms / 3000
        while not self._wake.wait(interval):
            with self._lock:
                held = list(self._held.items())
            for key, holder in held:
                try:
                    if not self._renew(keys=[key], args=[holder, self.ttl_ms]):
                        logger.warning(
                            "Lease %s was lost; another worker may run this request", key
                        )
                except redis_lib.RedisError as exc:
                    logger.warning("Could not renew lease %s: %s", key, exc)
