"""``GET /metrics``: the gateway's Prometheus metrics, in the standard text format.

Two parts, both declared in ``worker.metrics``: this process's own series (requests it
submitted, by operation and lane) and the fleet gauges, read from Redis at each scrape
(the backlog per lane, live workers, each cluster's limiter and job tracker). Workers
export their own series on ``WORKER_METRICS_PORT``; the fleet gauges come from here
only, so they are not repeated by every worker. Like ``/health``, no API key: scrape it
from inside the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from producer.jobs import Coverage
from worker.metrics import FleetCollector
from worker.queues import Backlog

router = APIRouter(tags=["health"])


class _ThisProcess(Collector):
    """The series of prometheus_client's default registry (this process's own)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def gateway_registry(
    read_backlog: Callable[[], Backlog], read_trackers: Callable[[], list[Coverage]]
) -> CollectorRegistry:
    """Return the registry ``/metrics`` serves: this process's series and the fleet's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ThisProcess())
    registry.register(FleetCollector(read_backlog, read_trackers))
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Serve every series in Prometheus's text format (the fleet's read from Redis now)."""
    registry: CollectorRegistry = request.app.state.metrics
    body = await anyio.to_thread.run_sync(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
