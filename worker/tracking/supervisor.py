"""In every worker process: which clusters need a tracker, and the ones this process runs.

A cluster needs tracking once eksops has touched it: the worker's default cluster
always, every other one from the first request that reaches it (the registry
``eksops:tracker:clusters``, written when a process first builds that cluster's
client). Every second the supervisor asks for the lease of each cluster it does not
track; whichever process gets it starts that cluster's :class:`ClusterTracker`, so
exactly one tracker per cluster runs in the fleet, and another takes over within
``TRACKER_LEASE_SECONDS`` of its holder's death. The default cluster's key is also
published (``eksops:tracker:default``) so that producers, which are not configured with
a cluster, know which records describe "the" cluster.
"""

from __future__ import annotations

import json
import logging
import threading

from worker.contracts import ClusterRef
from worker.jobrecords import CLUSTERS_KEY, DEFAULT_CLUSTER_KEY
from worker.runtime import Runtime
from worker.tracking.lease import TrackerLease
from worker.tracking.tracker import ClusterTracker, TrackerSettings

logger = logging.getLogger(__name__)

_ASK_EVERY_SECONDS = 1.0


class Supervisor:
    """Starts this process's trackers, for the clusters whose lease it gets."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings = TrackerSettings(
            lease_seconds=settings.tracker_lease_seconds,
            watch_timeout_seconds=settings.tracker_watch_timeout_seconds,
            record_ttl_seconds=runtime.queue.result_expires_seconds,
            log_tail_lines=settings.job_log_tail_lines,
            log_tail_bytes=settings.job_log_tail_bytes,
        )
        self._stop = threading.Event()
        self._running: dict[str, threading.Thread] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start supervising in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="eksops-trackers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every tracker of this process and give their leases up."""
        self._stop.set()
        for thread in list(self._running.values()):
            thread.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _clusters(self) -> dict[str, ClusterRef | None]:
        redis = self.runtime.redis
        default = self.runtime.clusters.target(None)
        redis.set(DEFAULT_CLUSTER_KEY, default.key)
        wanted: dict[str, ClusterRef | None] = {default.key: None}
        for key, raw in redis.hgetall(CLUSTERS_KEY).items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name in wanted:
                continue
            try:
                info = json.loads(raw)
                wanted[name] = ClusterRef(name=info["name"], region=info.get("region"))
            except (ValueError, KeyError, TypeError):
                logger.warning("Ignoring an unreadable tracker registration for %s", name)
        return wanted

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for key, ref in self._clusters().items():
                    running = self._running.get(key)
                    if running is None or not running.is_alive():
                        self._try(key, ref)
            except Exception as exc:  # Redis away, a cluster unreachable: ask again later
                logger.debug("Tracker supervision: %s", exc)
            self._stop.wait(_ASK_EVERY_SECONDS)

    def _try(self, key: str, ref: ClusterRef | None) -> None:
        lease = TrackerLease(self.runtime.redis, key, ttl_seconds=self.settings.lease_seconds)
        if not lease.acquire():
            return
        try:
            cluster = self.runtime.clusters.get(ref)
        except Exception as exc:
            logger.warning("Cannot track %s: %s", key, exc)
            lease.release()
            return
        tracker = ClusterTracker(cluster, self.runtime.redis, lease, self.settings)
        thread = threading.Thread(
            target=tracker.run, args=(self._stop,), name=f"eksops-tracker-{key}", daemon=True
        )
        self._running[key] = thread
        thread.start()
