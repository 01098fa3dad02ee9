"""The gateway's use of the producer library, kept off the event loop.

Routes stay thin: they hand an operation and its arguments to :class:`Gateway`, which
submits through :class:`producer.client.EksOps` (validation with the shared contracts,
idempotent enqueue) in a worker thread and waits through :class:`Waiter`. It also builds
the gateway's own ``EksOps`` with short Redis timeouts, so a dead Redis answers 503
quickly instead of holding requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio.to_thread

from producer.client import EksOps, Submission
from producer.gateway.jobwaits import JobWaits
from producer.gateway.settings import GatewaySettings
from producer.gateway.streams import EventStreams
from producer.gateway.waiting import Waiter, WaitFor
from producer.queue import make_app, make_redis
from worker.contracts import Operation, RequestStatus
from worker.delivery.connections import async_redis_client
from worker.settings import QueueSettings
from worker.tenants import Tenant


def connect(settings: GatewaySettings, queue: QueueSettings) -> EksOps:
    """Return an ``EksOps`` whose Redis calls give up after the gateway's timeouts."""
    queue.require_urls()
    timeout = settings.gateway_redis_timeout_seconds
    app = make_app(queue)
    # Producer-side only: a poll failing fast (503, caller retries) beats one that
    # retries for minutes inside an HTTP request.
    app.conf.update(
        redis_socket_timeout=timeout,
        redis_socket_connect_timeout=timeout,
        result_backend_always_retry=False,
        broker_connection_timeout=settings.gateway_health_timeout_seconds,
        broker_connection_max_retries=1,
    )
    client = make_redis(
        queue,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return EksOps(settings=settings, queue=queue, app=app, redis=client)


class Gateway:
    """Submit, read and wait for requests on behalf of HTTP callers."""

    def __init__(
        self, eksops: EksOps, settings: GatewaySettings, *, async_redis: Any = None
    ) -> None:
        self.eksops = eksops
        self.settings = settings
        self.jobs = JobWaits(eksops)
        if async_redis is None:
            async_redis = async_redis_client(
                str(eksops.queue.broker_url),
                eksops.queue,
                socket_connect_timeout=settings.gateway_redis_timeout_seconds,
            )
        self.event_streams = EventStreams(async_redis, limit=settings.gateway_max_event_streams)
        self.waiter = Waiter(
            eksops.status,
            eksops.notifier.subscribe,
            max_seconds=settings.gateway_wait_max_seconds,
            max_waiting=settings.gateway_max_waiting,
        )

    async def submit(
        self,
        operation: Operation,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        callback_url: str | None = None,
        tenant: Tenant | None = None,
    ) -> Submission:
        """Validate, check the tenant's scope, policy and quotas, and enqueue.

        A request ID reused for another request raises RequestIdReused.
        """
        submit = partial(
            self.eksops.submit,
            operation,
            arguments,
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )
        return await anyio.to_thread.run_sync(submit)

    async def status(self, request_id: str) -> RequestStatus:
        """Return where ``request_id`` is now (``unknown`` if never submitted)."""
        return await self.waiter.read(request_id)

    async def wait(self, request_id: str, wait: WaitFor) -> RequestStatus:
        """Return the status once final, or after the wait (capped by the settings)."""
        return await self.waiter.wait(request_id, wait.seconds, disconnected=wait.disconnected)

    def close(self) -> None:
        """Release the Redis connections."""
        self.eksops.close()
