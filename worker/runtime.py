"""What one worker process holds for all its requests: settings, clusters, policy, Redis.

Built once per process, at its start (and again in a forked pool child), from the
settings read once there; never at import, so importing the task module stays free of
side effects and tests build runtimes of their own. The engine and everything under it
receive it as an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.contracts import Limits as RequestLimits
from worker.delivery.connections import redis_client
from worker.executions import Executions
from worker.jobrecords import register_cluster
from worker.keysfile import KeysFileWatch
from worker.leases import LeaseKeeper
from worker.operations import Clusters, ClusterTarget
from worker.operations.limiter import Limiter, Limits, RedisLimiter, Unlimited
from worker.records import Starter
from worker.retries import RetryPolicy
from worker.settings import QueueSettings, WorkerSettings


@dataclass
class Runtime:
    """The process-wide dependencies of request executions."""

    settings: WorkerSettings
    queue: QueueSettings
    clusters: Clusters
    policy: RetryPolicy
    redis: Any
    leases: LeaseKeeper
    executions: Executions
    # With signing on and GATEWAY_KEYS_FILE set: the tenants whose scope is checked again.
    tenants: KeysFileWatch | None = None

    @property
    def limits(self) -> RequestLimits:
        """Return the validation limits arguments are checked against."""
        return self.settings.limits

    @classmethod
    def build(
        cls, settings: WorkerSettings, queue: QueueSettings, backend: Callable[[], Any]
    ) -> Runtime:
        """Connect to Redis and prepare the clusters; nothing is called yet."""
        queue.require_urls()
        # Blocking pool: threads wait for a connection rather than fail when all are busy.
        # The pool's threads, the interactive runners beside them, and the background.
        threads = queue.worker_concurrency + queue.interactive_runners
        client = redis_client(str(queue.broker_url), queue, max_connections=threads + 4)
        leases = LeaseKeeper(client, ttl_seconds=settings.lease_seconds)
        return cls(
            settings=settings,
            queue=queue,
            clusters=Clusters(
                settings,
                pool_size=threads,
                limiter_for=limiter_factory(settings, client),
                on_new=lambda target: register_cluster(
                    client, target.key, name=target.name, region=target.region
                ),
            ),
            policy=RetryPolicy.from_settings(settings),
            redis=client,
            leases=leases,
            executions=Executions(
                starter=Starter(
                    client, lease_ms=leases.ttl_ms, ttl_seconds=queue.result_expires_seconds
                ),
                leases=leases,
                redis=client,
                backend=backend,
                shared_redis=queue.broker_url == queue.result_backend,
                # Unbounded: a start sent ahead holds its connection for one trip, and
                # at most one per prefetched message is out at a time.
                sender=redis_client(str(queue.broker_url), queue),
            ),
            tenants=KeysFileWatch(queue.gateway_keys_file)
            if queue.signing and queue.gateway_keys_file is not None
            else None,
        )


def limiter_factory(settings: WorkerSettings, client: Any) -> Callable[[ClusterTarget], Limiter]:
    """Return how clusters get their fleet-wide limiter (none when limits are off)."""
    limits = Limits(
        rate_per_second=settings.k8s_rate_limit_qps,
        burst=settings.k8s_rate_limit_burst,
        max_in_flight=settings.k8s_max_in_flight,
        # Renewed while its call runs: the lease is how long a dead worker's slots stay taken.
        lease_seconds=15.0,
        interactive_share=settings.k8s_interactive_share,
    )
    if not limits.enabled:
        return lambda _target: Unlimited()
    return lambda target: RedisLimiter(client, target.key, limits)
