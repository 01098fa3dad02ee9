"""What one worker process holds for all its tasks: settings, clusters, policy, Redis.

Built once per process on first use (after any fork), never at import, so importing
the task module stays free of side effects and tests can point a fresh runtime at a
different configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.leases import LeaseKeeper
from worker.operations import Clusters, ClusterTarget
from worker.operations.limiter import Limiter, Limits, RedisLimiter, Unlimited
from worker.records import Starter
from worker.retries import RetryPolicy
from worker.settings import QueueSettings, WorkerSettings


@dataclass
class Runtime:
    """The process-wide dependencies of tasks."""

    settings: WorkerSettings
    queue: QueueSettings
    clusters: Clusters
    policy: RetryPolicy
    redis: Any
    starter: Starter
    leases: LeaseKeeper

    @classmethod
    def load(cls) -> Runtime:
        """Read and check the configuration; raise if it is missing or invalid."""
        settings = WorkerSettings()
        queue = QueueSettings()
        queue.require_urls()
        # Blocking pool: threads wait for a connection rather than fail when all are busy.
        pool = redis.BlockingConnectionPool.from_url(
            str(queue.broker_url), max_connections=queue.worker_concurrency + 4, timeout=10
        )
        client = redis.Redis(connection_pool=pool)
        return cls(
            settings=settings,
            queue=queue,
            clusters=Clusters(
                settings,
                pool_size=queue.worker_concurrency,
                limiter_for=limiter_factory(settings, client),
            ),
            policy=RetryPolicy.from_settings(settings),
            redis=client,
            starter=Starter(client),
            leases=LeaseKeeper(client, ttl_seconds=settings.lease_seconds),
        )


def limiter_factory(settings: WorkerSettings, client: Any) -> Callable[[ClusterTarget], Limiter]:
    """Return how clusters get their fleet-wide limiter (none when limits are off)."""
    limits = Limits(
        rate_per_second=settings.k8s_rate_limit_qps,
        burst=settings.k8s_rate_limit_burst,
        max_in_flight=settings.k8s_max_in_flight,
        # Renewed while its call runs: the lease is how long a dead worker's slots stay taken.
        lease_seconds=15.0,
    )
    if not limits.enabled:
        return lambda _target: Unlimited()
    return lambda target: RedisLimiter(
        client, f"{target.name}@{target.region or 'kubeconfig'}", limits
    )


class _Holder:
    """The process's runtime, loaded on first use."""

    lock = threading.Lock()
    current: Runtime | None = None


def runtime() -> Runtime:
    """Return this process's runtime, loading it on first use."""
    current = _Holder.current
    if current is None:
        with _Holder.lock:
            if _Holder.current is None:
                _Holder.current = Runtime.load()
            current = _Holder.current
    return current


def reset_runtime(value: Runtime | None = None) -> None:
    """Replace (or drop) the process's runtime, e.g. after a fork or in tests."""
    with _Holder.lock:
        _Holder.current = value
