"""eksops's own Redis clients, from the same URLs Celery uses: one Redis, or Sentinel.

Producers (enqueue scripts, records, batches), workers (leases, starts, the limiter)
and the doctor talk to Redis directly, beside Celery. With a ``redis://`` or
``rediss://`` URL that is a plain client; with ``sentinel://host:26379;sentinel://...``
it is a client of the master the sentinels currently name (``REDIS_SENTINEL_MASTER``),
which follows a failover: a connection to a demoted master fails with a connection
error, the caller's retry reconnects to the promoted one, and every script of eksops
(submit, start, claim, sweep, limiter, leases) runs on the current master. Celery's
own connections follow the same URL (``worker.delivery.config``: kombu's and Celery's
Sentinel transport and backend, with eksops's transport on top).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
from redis.sentinel import Sentinel, SentinelConnectionPool

from worker.settings import QueueSettings

SENTINEL_PORT = 26379


def sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Return the sentinels of ``sentinel://h1:p1;sentinel://h2:p2/db`` and the master's options.

    The options are what the first URL carries for the master itself: its database,
    username and password.
    """
    hosts: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for index, part in enumerate(url.split(";")):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError(f"not a sentinel:// URL: {part!r}")
        hosts.append((parsed.hostname, parsed.port or SENTINEL_PORT))
        if index == 0:
            path = parsed.path.strip("/")
            options["db"] = int(path) if path else 0
            if parsed.username:
                options["username"] = unquote(parsed.username)
            if parsed.password:
                options["password"] = unquote(parsed.password)
    return hosts, options


def async_redis_client(url: str, queue: QueueSettings, **options: Any) -> Any:
    """Return an asyncio client of the Redis at ``url`` (the current master, with Sentinel)."""
    if not url.startswith("sentinel://"):
        return redis.asyncio.Redis.from_url(url, **options)
    hosts, master = sentinel_hosts(url)
    password = queue.redis_sentinel_password
    sentinels = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        sentinel_kwargs={"password": password.get_secret_value() if password else None},
        **options,
    )
    return sentinels.master_for(str(queue.redis_sentinel_master), **master)


def redis_client(
    url: str, queue: QueueSettings, *, max_connections: int | None = None, **options: Any
) -> Any:
    """Return a client of the Redis at ``url`` (the current master, with Sentinel).

    ``max_connections`` makes a blocking pool of that size: threads wait for a free
    connection rather than fail (with Sentinel the pool has no bound instead: redis-py
    has no blocking Sentinel pool, and a process's threads are bounded anyway).
    ``options`` are redis-py's (timeouts, health checks).
    """
    if not url.startswith("sentinel://"):
        if max_connections is None:
            return redis.Redis.from_url(url, **options)
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, **options
        )
        return redis.Redis(connection_pool=pool)
    hosts, master = sentinel_hosts(url)
    password = queue.redis_sentinel_password
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        sentinel_kwargs={
            "password": password.get_secret_value() if password else None,
            "socket_timeout": options.get("socket_timeout", 5),
            "socket_connect_timeout": options.get("socket_connect_timeout", 5),
        },
        **options,
    )
    return sentinels.master_for(  # type: ignore[no-untyped-call]
        str(queue.redis_sentinel_master), connection_pool_class=SentinelConnectionPool, **master
    )
