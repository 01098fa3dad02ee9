"""The worker's metrics endpoint: ``http://<host>:WORKER_METRICS_PORT/metrics``.

One endpoint per ``celery worker`` process, served by prometheus_client's own HTTP
server from a daemon thread of that process, started when the worker is ready. With
the default threads pool every request runs in that process, so its registry holds
everything. With the prefork pool the requests run in child processes: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory of that worker's own, and each child
writes its series there (prometheus_client's multiprocess mode); the endpoint then
serves their sum, a child's files are marked dead when it exits, and the files of an
earlier run are removed when the worker starts (before its pool does). Several ``celery
worker`` processes on one host each get their own ``WORKER_METRICS_PORT`` (and their
own directory), so each is one Prometheus target.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

logger = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """Return whether pool children write their series to ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROCESS_DIR))


def registry() -> CollectorRegistry:
    """Return the registry the endpoint serves: this process's, or every child's files."""
    if not multiprocess_mode():
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)  # type: ignore[no-untyped-call]
    return aggregated


class Endpoint:
    """The HTTP server of one worker process's metrics."""

    def __init__(self, port: int, address: str) -> None:
        self.port = port
        self.address = address
        self._server: Any = None

    def start(self) -> None:
        """Serve ``/metrics`` from a daemon thread."""
        served = start_http_server(self.port, addr=self.address, registry=registry())
        self._server = served[0] if isinstance(served, tuple) else None
        logger.info("Metrics at http://%s:%d/metrics", self.address, self.port)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def forget_earlier_runs() -> None:
    """Remove the series files an earlier run left (multiprocess mode; before the pool starts)."""
    if multiprocess_mode():
        for path in Path(os.environ[MULTIPROCESS_DIR]).glob("*.db"):
            path.unlink(missing_ok=True)


def child_exited(pid: int) -> None:
    """Mark a pool child's series dead (multiprocess mode; live gauges of it go)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
