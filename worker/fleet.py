"""What the fleet shares about each cluster in Redis, for ``/health`` and ``eksops doctor``.

Two things, both read without touching the cluster:

* the fleet-wide API limiter's state (``worker.operations.limiter`` keeps it; its key
  names are declared here so readers find it): tokens left, calls in flight, callers
  waiting, and a pause after a 429;
* the last check of cluster access. Each worker checks its cluster at start and every
  ``WORKER_PREFLIGHT_INTERVAL_SECONDS`` (see ``worker.preflight``) and writes the
  outcome here: one field per cluster and worker host in the hash
  ``eksops:cluster-checks`` (hosts may differ in credentials and network), a JSON
  object with whether every step passed, when, and the names of the steps that
  failed. Readers treat an entry older than :data:`STALE_AFTER_INTERVALS` intervals as
  unknown (no worker on that host has checked since).

Pure redis-py and JSON; the gateway reads it without touching the cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

CLUSTER_CHECKS_KEY = "eksops:cluster-checks"
STALE_AFTER_INTERVALS = 3
LIMITER_KEY_PREFIX = "eksops:limit:"
_LIMITER_PARTS = (
    "bucket",
    "pause",
    "inflight",
    "line",
    "line-seen",
    "tickets",
    "bulk-line",
    "bulk-line-seen",
)


def limiter_keys(cluster: str) -> list[str]:
    """Return the limiter's keys for ``cluster`` (``name@region``), in the script's order."""
    return [f"{LIMITER_KEY_PREFIX}{cluster}:{part}" for part in _LIMITER_PARTS]


@dataclass(frozen=True)
class LimiterState:
    """The limiter of one cluster, as of now."""

    cluster: str
    tokens: float | None  # None: no call yet, or no rate limit
    rate_per_second: float | None
    burst: float | None
    in_flight: int
    waiting: int
    paused_for_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data."""
        return asdict(self)


def read_limiter(redis: Any, cluster: str) -> LimiterState:
    """Return the limiter state of ``cluster``: tokens refilled to now, slots, waiters, pause."""
    bucket, pause, in_flight, line, _seen, _tickets, bulk_line, _bulk_seen = limiter_keys(cluster)
    pipe = redis.pipeline(transaction=False)
    pipe.time()
    pipe.hmget(bucket, "tokens", "ts", "rate", "burst")
    pipe.pttl(pause)
    pipe.zrange(in_flight, 0, -1, withscores=True)
    pipe.zcard(line)
    pipe.zcard(bulk_line)
    (seconds, micros), (tokens, stamp, rate, burst), paused_ms, held, waiting, bulk = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    current = None
    if tokens is not None and rate is not None and burst is not None:
        elapsed = max(0, now_ms - int(float(stamp or now_ms)))
        current = min(float(burst), float(tokens) + elapsed * float(rate) / 1000)
    return LimiterState(
        cluster=cluster,
        tokens=None if current is None else round(current, 2),
        rate_per_second=float(rate) if rate is not None else None,
        burst=float(burst) if burst is not None else None,
        in_flight=sum(1 for _, lease in held if lease > now_ms),
        waiting=int(waiting) + int(bulk),
        paused_for_seconds=max(0, int(paused_ms)) / 1000,
    )


def limited_clusters(redis: Any) -> list[str]:
    """Return the clusters whose limiter has state in Redis (``name@region``)."""
    clusters = set()
    for key in redis.scan_iter(match=f"{LIMITER_KEY_PREFIX}*:bucket", count=100):
        text = key.decode() if isinstance(key, bytes) else str(key)
        clusters.add(text.removeprefix(LIMITER_KEY_PREFIX).rsplit(":", 1)[0])
    return sorted(clusters)


@dataclass(frozen=True)
class ClusterCheck:
    """The last check of one cluster by a worker."""

    cluster: str
    ok: bool
    checked_at: str
    worker: str
    interval_seconds: float
    failed: list[str] = field(default_factory=list)

    def stale(self, now: datetime | None = None) -> bool:
        """Return whether no worker has checked for longer than it should have."""
        now = now or datetime.now(UTC)
        age = (now - datetime.fromisoformat(self.checked_at)).total_seconds()
        return age > STALE_AFTER_INTERVALS * self.interval_seconds

    @property
    def status(self) -> Literal["pass", "fail", "unknown"]:
        """``pass``, ``fail``, or ``unknown`` when the check is stale."""
        if self.stale():
            return "unknown"
        return "pass" if self.ok else "fail"


def publish(redis: Any, check: ClusterCheck) -> None:
    """Record ``check`` as the latest of its cluster from its worker host."""
    redis.hset(CLUSTER_CHECKS_KEY, f"{check.cluster}|{check.worker}", json.dumps(asdict(check)))


def forget(redis: Any, check: ClusterCheck) -> None:
    """Remove ``check`` (its cluster, from its worker host)."""
    redis.hdel(CLUSTER_CHECKS_KEY, f"{check.cluster}|{check.worker}")


def read_all(redis: Any) -> list[ClusterCheck]:
    """Return the latest check of every cluster from every worker host, sorted."""
    checks = []
    for _, raw in sorted(redis.hgetall(CLUSTER_CHECKS_KEY).items()):
        try:
            checks.append(ClusterCheck(**json.loads(raw)))
        except (ValueError, TypeError):
            continue  # written by another version; the next check replaces it
    return checks
