"""The worker's check of its cluster access: at start, then every few minutes.

Runs ``worker.operations.checks`` against the default cluster. With
``WORKER_PREFLIGHT=warn`` (the default) each failed step is logged with its fix and
the worker starts anyway (the cluster may come back); with ``strict`` it refuses to
start; ``off`` skips it. Every outcome is published (``worker.fleet``) so the
gateway's ``/health`` can say the workers cannot reach their cluster, which it
cannot see otherwise. A background thread repeats the check: credentials expire,
access entries change.
"""

from __future__ import annotations

import logging
import socket
import threading

from worker import fleet
from worker.operations.checks import Check, cluster_checks
from worker.runtime import Runtime
from worker.timestamps import now_iso

logger = logging.getLogger(__name__)


def check(runtime: Runtime) -> list[Check]:
    """Check the default cluster now, log what failed, publish the outcome."""
    settings = runtime.settings
    target = runtime.clusters.target(None)
    results = cluster_checks(runtime.clusters, target, mode=settings.mode)
    failed = [result for result in results if not result.ok]
    for result in failed:
        logger.warning("Preflight: %s failed: %s; fix: %s", result.name, result.detail, result.fix)
    if not failed:
        logger.info("Preflight: cluster %s reachable; every check passed", settings.cluster_label)
    try:
        fleet.publish(
            runtime.redis,
            fleet.ClusterCheck(
                cluster=target.key,
                ok=not failed,
                checked_at=now_iso(),
                worker=socket.gethostname(),
                interval_seconds=settings.worker_preflight_interval_seconds,
                failed=[result.name for result in failed],
            ),
        )
    except Exception as exc:  # Redis down: the next check publishes
        logger.warning("Preflight: could not publish the cluster check: %s", exc)
    return results


def keep_checking(runtime: Runtime, stop: threading.Event) -> threading.Thread:
    """Repeat :func:`check` every interval in a daemon thread, until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(runtime.settings.worker_preflight_interval_seconds):
            try:
                check(runtime)
            except Exception:  # a bug here must not take the worker down
                logger.exception("Preflight check failed unexpectedly")

    thread = threading.Thread(target=loop, name="eksops-preflight", daemon=True)
    thread.start()
    return thread


def refused(results: list[Check]) -> str | None:
    """Return the one line a strict preflight refuses to start with, if any step failed."""
    failed = [result for result in results if not result.ok]
    if not failed:
        return None
    first = failed[0]
    return f"{first.name} failed: {first.detail}; fix: {first.fix}"
