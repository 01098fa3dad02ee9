"""``GET /health``: the seed's fields plus whether the queue can work.

Answers 200 while Redis answers (``healthy`` with a live worker, ``degraded`` without:
requests are accepted and wait in the queue) and 503 when Redis does not. It must be
fast and never hang, because load balancers and compose call it every few seconds:

* the Redis check is one PING with the gateway's short socket timeouts, abandoned after
  ``GATEWAY_HEALTH_TIMEOUT_SECONDS`` whatever the socket does;
* live workers come from a Celery ``control.ping`` broadcast, which costs a full
  timeout per call, so its answer is reused for ``GATEWAY_HEALTH_CACHE_SECONDS`` and at
  most one ping is in flight; concurrent checks get the last known count.

The ``queues`` section (the backlog per lane, live workers, each cluster's limiter:
``worker.queues``) is one Redis script and a read per cluster, bounded by the same
timeout; null when it could not be read in time.

Never requires an API key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from producer.gateway.schemas import ClusterAccess, Health, QueueState, TrackerState
from producer.gateway.settings import GatewaySettings
from producer.jobs import Coverage
from worker.fleet import ClusterCheck
from worker.queues import Backlog

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class HealthMonitor:
    """Checks Redis on every call and counts live workers at most once per cache period."""

    def __init__(
        self,
        *,
        ping_redis: Callable[[], object],
        count_workers: Callable[[], int],
        settings: GatewaySettings,
        read_cluster_checks: Callable[[], list[ClusterCheck]] = list,
        read_trackers: Callable[[], list[Coverage]] = list,
        read_backlog: Callable[[], Backlog] | None = None,
    ) -> None:
        self._read_backlog = read_backlog
        self._ping_redis = ping_redis
        self._read_cluster_checks = read_cluster_checks
        self._read_trackers = read_trackers
        self._count_workers = count_workers
        self._settings = settings
        self._timeout = settings.gateway_health_timeout_seconds
        self._workers: int | None = None
        self._counted_at = float("-inf")
        self._counting = anyio.Lock()

    async def report(self) -> Health:
        """Return the gateway's health; ``status`` is ``unhealthy`` when Redis is down."""
        reachable = await self._redis_answers()
        workers = await self._live_workers() if reachable else None
        clusters = await self._clusters() if reachable else []
        trackers = await self._trackers() if reachable else []
        queues = await self._queues() if reachable else None
        if not reachable:
            status = "unhealthy"
        elif workers and all(access.check != "fail" for access in clusters):
            status = "healthy"
        else:
            status = "degraded"
        return Health(
            status=status,
            cluster=self._settings.eks_cluster_name,
            region=self._settings.eks_region,
            broker="reachable" if reachable else "unreachable",
            workers=workers,
            clusters=clusters,
            trackers=trackers,
            queues=queues,
        )

    async def _queues(self) -> QueueState | None:
        if self._read_backlog is None:
            return None
        with anyio.move_on_after(self._timeout):
            try:
                backlog = await anyio.to_thread.run_sync(self._read_backlog, abandon_on_cancel=True)
            except Exception as exc:  # health must answer; the backlog is then unknown
                logger.warning("Health: backlog unreadable: %s: %s", type(exc).__name__, exc)
                return None
            return QueueState.model_validate(backlog.as_dict())
        return None

    async def _clusters(self) -> list[ClusterAccess]:
        with anyio.move_on_after(self._timeout):
            try:
                checks = await anyio.to_thread.run_sync(
                    self._read_cluster_checks, abandon_on_cancel=True
                )
            except Exception as exc:  # health must answer; the checks are then unknown
                logger.warning("Health: cluster checks unreadable: %s: %s", type(exc).__name__, exc)
                return []
            return [
                ClusterAccess(
                    cluster=check.cluster,
                    worker=check.worker,
                    check=check.status,
                    checked_at=check.checked_at,
                    failed=check.failed,
                )
                for check in checks
            ]
        return []

    async def _trackers(self) -> list[TrackerState]:
        with anyio.move_on_after(self._timeout):
            try:
                found = await anyio.to_thread.run_sync(self._read_trackers, abandon_on_cancel=True)
            except Exception as exc:  # health must answer; the trackers are then unknown
                logger.warning("Health: trackers unreadable: %s: %s", type(exc).__name__, exc)
                return []
            return [
                TrackerState(
                    cluster=tracker.cluster or "?",
                    current=tracker.current,
                    state=tracker.state,
                    heartbeat_age_seconds=tracker.age_seconds,
                    holder=tracker.holder.rsplit(":", 1)[0] if tracker.holder else None,
                )
                for tracker in found
            ]
        return []

    async def _redis_answers(self) -> bool:
        with anyio.move_on_after(self._timeout):
            try:
                await anyio.to_thread.run_sync(self._ping_redis, abandon_on_cancel=True)
            # Whatever fails (socket, DNS, protocol), Redis is unreachable for callers.
            except Exception as exc:
                logger.warning("Health: Redis unreachable: %s: %s", type(exc).__name__, exc)
                return False
            return True
        logger.warning("Health: Redis did not answer within %ss", self._timeout)
        return False

    async def _live_workers(self) -> int | None:
        fresh = time.monotonic() - self._counted_at < self._settings.gateway_health_cache_seconds
        if fresh or self._counting.locked():
            return self._workers
        async with self._counting:
            count: int | None = None
            # A broadcast ping waits its full timeout for replies; allow a little more.
            with anyio.move_on_after(self._timeout + 1.0):
                try:
                    count = await anyio.to_thread.run_sync(
                        self._count_workers, abandon_on_cancel=True
                    )
                # Health must answer; a failed ping only means "unknown".
                except Exception as exc:
                    logger.warning("Health: worker ping failed: %s: %s", type(exc).__name__, exc)
            self._workers, self._counted_at = count, time.monotonic()
        return self._workers


def _monitor(request: Request) -> HealthMonitor:
    monitor: HealthMonitor = request.app.state.health
    return monitor


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis (the queue) is unreachable."}},
    summary="Gateway, broker and worker health",
)
async def health(monitor: Annotated[HealthMonitor, Depends(_monitor)]) -> JSONResponse:
    """Report the seed's ``status``, ``cluster``, ``region``, plus broker and workers."""
    report = await monitor.report()
    return JSONResponse(
        report.model_dump(mode="json"), status_code=503 if report.status == "unhealthy" else 200
    )
