"""The job tracker's costs: API calls per tracked Job, lag, memory, Redis bytes per record.

The tracker runs in a worker of its own (``JOB_TRACKING`` on, concurrency 1, no task
sent to it), so what is measured is the tracker and nothing else; every other bench
worker runs with tracking off (one tracker per cluster per fleet, as deployed). The
phase's Jobs are created by the harness straight into kubesim, labelled and named as
eksops creates them, from a thread pool: a creation rate the queue would not reach on
this machine, so the tracker, not the producer, is what is pushed.

* **Lag**: each Job ends ``duration`` seconds after its creation (kubesim's
  ``duration-seconds`` annotation), so a burst of N Jobs created in a few seconds ends
  in a few seconds too. The harness watches the same Jobs itself (one watch) and notes
  when each Job's end became visible in the cluster; a pattern subscription on the
  tracker's notification channels notes when a waiter of that Job was woken (what
  :class:`producer.notify.Notifier` waits on); the record's ``updated_at`` says when it
  was written. Lag = woken (or written) minus visible, per Job.
* **API calls**: kubesim counts every request; the tracker's reads (lists, watches, log
  reads) during the phase divided by the Jobs tracked. The harness's own watch is
  opened before the count starts.
* **Memory**: the tracker worker's RSS once every Job is recorded as ended, at 10,000
  and 100,000 tracked Jobs (Jobs carry ``ttlSecondsAfterFinished: 0``: kubesim removes
  them once they end, the records stay, as they would with any TTL).
* **Redis bytes**: ``MEMORY USAGE`` of sampled job records, and of the event stream
  per transition.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from bench.loop import percentile
from bench.procs import rss_bytes
from bench.stack import Kubesim
from producer import jobs
from worker import jobrecords
from worker.contracts import MANAGED_BY_LABEL, MANAGED_BY_VALUE, REQUEST_ID_LABEL
from worker.errors import EksOpsError
from worker.events import STREAM_KEY
from worker.operations import ClusterClient
from worker.tracking.watching import list_all, watch

_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
_ENDED = {"succeeded", "failed", "deleted"}
_MB = 1024 * 1024
_DURATION = "kubesim.eksops.io/duration-seconds"


def job_body(name: str, namespace: str, *, duration: float) -> dict[str, Any]:
    """A Job as eksops creates it (labels on the Job and its pods), ending after ``duration``."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_ID_LABEL: str(uuid.uuid4())}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {_DURATION: f"{duration:.3f}"},
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                    "restartPolicy": "Never",
                },
            },
        },
    }


def create_jobs(
    client: ClusterClient,
    namespace: str,
    names: list[str],
    *,
    duration: float,
    threads: int = 16,
) -> float:
    """Create ``names`` from ``threads`` threads; return the seconds it took."""
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    def create(name: str) -> None:
        for attempt in range(5):
            try:
                client.request("POST", path, body=job_body(name, namespace, duration=duration))
                return
            except EksOpsError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    return time.perf_counter() - started


class ClusterWatch:
    """The harness's own watch of the Jobs: when each one's end became visible."""

    def __init__(self, client: ClusterClient) -> None:
        self.ended: dict[str, float] = {}
        self.reopened = 0
        self._client = client
        self._stop = threading.Event()
        listed = list_all(client, "/apis/batch/v1/jobs", selector=_SELECTOR)
        self._version = listed.resource_version
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for event in watch(
                self._client,
                "/apis/batch/v1/jobs",
                selector=_SELECTOR,
                resource_version=self._version,
                timeout_seconds=600,
            ):
                job = event.get("object") or {}
                metadata = job.get("metadata") or {}
                self._version = str(metadata.get("resourceVersion") or self._version)
                conditions = (job.get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                    for c in conditions
                ):
                    key = f"{metadata.get('namespace')}/{metadata.get('name')}"
                    self.ended.setdefault(key, time.time())
                if self._stop.is_set():
                    return
            self.reopened += 1

    def stop(self) -> None:
        self._stop.set()


class Wakes:
    """When a waiter of each Job was woken with its end (a pattern subscription)."""

    def __init__(self, client: Any) -> None:
        self.woken: dict[str, float] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(jobrecords.notify_channel("*"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        prefix = len(jobrecords.notify_channel(""))
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.5)
            if not message or message["data"].decode() not in _ENDED:
                continue
            self.woken.setdefault(message["channel"].decode()[prefix:], time.time())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pubsub.close()


@dataclass
class TrackingResult:
    """What one tracking phase measured."""

    jobs: int
    create_seconds: float
    end_window_seconds: float
    lag_woken_ms: list[float]
    lag_written_ms: list[float]
    missing: int
    api_calls: dict[str, int]
    rss_mib: dict[int, float] = field(default_factory=dict)
    record_bytes: float = 0.0
    event_bytes: float = 0.0
    memory_seconds: float = 0.0
    # The tracker's reads over the whole phase (burst and memory marks), and its Jobs.
    api_calls_all: dict[str, int] = field(default_factory=dict)
    jobs_all: int = 0

    @property
    def api_calls_per_job(self) -> float:
        return sum(self.api_calls.values()) / max(self.jobs, 1)

    @property
    def api_calls_per_job_all(self) -> float:
        return sum(self.api_calls_all.values()) / max(self.jobs_all, 1)


def _tracker_reads(kubesim: Kubesim) -> dict[str, int]:
    calls: dict[str, int] = {}
    for row in kubesim.admin.counters()["requests"]:
        if row["verb"] in ("list", "watch", "get") and row["resource"] in ("jobs", "pods"):
            label = f"{row['verb']} {row['resource']}"
            calls[label] = calls.get(label, 0) + row["count"]
    return calls


def _wait(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"tracking bench: {what} not reached in {timeout:.0f}s")
        time.sleep(0.5)


def _all_ended(client: redis.Redis, keys: list[str]) -> Callable[[], bool]:
    """A check that every record of ``keys`` has ended; each call reads only those not yet."""
    remaining = list(keys)

    def check() -> bool:
        still: list[str] = []
        for start in range(0, len(remaining), 2000):
            chunk = remaining[start : start + 2000]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(key, "phase")
            for key, phase in zip(chunk, pipe.execute(), strict=True):
                if not phase or phase.decode() not in _ENDED:
                    still.append(key)
        remaining[:] = still
        return not remaining

    return check


def _record_written(client: redis.Redis, keys: list[str]) -> dict[str, float]:
    written: dict[str, float] = {}
    for start in range(0, len(keys), 2000):
        pipe = client.pipeline(transaction=False)
        chunk = keys[start : start + 2000]
        for key in chunk:
            pipe.hget(key, "updated_at")
        for key, value in zip(chunk, pipe.execute(), strict=True):
            if value:
                written[key] = datetime.fromisoformat(value.decode()).timestamp()
    return written


def run_tracking(
    client: ClusterClient,
    redis_client: redis.Redis,
    kubesim: Kubesim,
    tracker_pid: int,
    *,
    namespace: str,
    lag_jobs: int,
    memory_jobs: int,
    duration: float,
    progress: Callable[[str], None] = print,
) -> TrackingResult:
    """Track ``lag_jobs`` Jobs for lag and API calls, then up to ``memory_jobs`` for RSS."""
    _wait(
        lambda: jobs.coverage(redis_client, jobs.cluster_key(redis_client, None)).current,
        timeout=60,
        what="tracker coverage",
    )
    cluster = jobs.cluster_key(redis_client, None)
    assert cluster is not None
    seen = ClusterWatch(client)
    wakes = Wakes(redis_client)
    kubesim.admin.clear_counters()
    names = [f"trk-{index:06d}" for index in range(lag_jobs)]
    keys = [jobrecords.job_key(cluster, namespace, name) for name in names]
    create_seconds = create_jobs(client, namespace, names, duration=duration)
    progress(f"tracking: {lag_jobs:,} Jobs created in {create_seconds:.1f}s")
    _wait(
        _all_ended(redis_client, keys),
        timeout=duration + create_seconds + 300,
        what=f"{lag_jobs} Jobs recorded as ended",
    )
    time.sleep(1.0)  # the last wakes and the watch's last events
    wakes.stop()
    seen.stop()
    api_calls = _tracker_reads(kubesim)
    written = _record_written(redis_client, keys)
    lag_woken, lag_written, missing = [], [], 0
    for name, key in zip(names, keys, strict=True):
        visible = seen.ended.get(f"{namespace}/{name}")
        woken = wakes.woken.get(key)
        if visible is None or woken is None:
            missing += 1
            continue
        lag_woken.append((woken - visible) * 1000)
        if key in written:
            lag_written.append((written[key] - visible) * 1000)
    ends = sorted(seen.ended.values())
    result = TrackingResult(
        jobs=lag_jobs,
        create_seconds=create_seconds,
        end_window_seconds=ends[-1] - ends[0] if ends else 0.0,
        lag_woken_ms=lag_woken,
        lag_written_ms=lag_written,
        missing=missing,
        api_calls=api_calls,
    )
    result.record_bytes = _mean_usage(redis_client, keys[:: max(1, len(keys) // 200)])
    result.event_bytes = _stream_bytes_per_entry(redis_client)
    result.rss_mib[lag_jobs] = rss_bytes(tracker_pid) / _MB
    progress(
        f"tracking: lag p50 {percentile(lag_woken, 0.5):.0f} ms, "
        f"p99 {percentile(lag_woken, 0.99):.0f} ms; tracker RSS "
        f"{result.rss_mib[lag_jobs]:.1f} MiB at {lag_jobs:,} Jobs"
    )
    started = time.perf_counter()
    done = lag_jobs
    while done < memory_jobs:
        count = min(10_000, memory_jobs - done)
        more = [f"trk-{index:06d}" for index in range(done, done + count)]
        more_keys = [jobrecords.job_key(cluster, namespace, name) for name in more]
        create_jobs(client, namespace, more, duration=1.0)
        _wait(_all_ended(redis_client, more_keys), timeout=600, what=f"{done + count} ended")
        done += count
        result.rss_mib[done] = rss_bytes(tracker_pid) / _MB
        progress(f"tracking: {done:,} Jobs tracked, tracker RSS {result.rss_mib[done]:.1f} MiB")
    result.memory_seconds = time.perf_counter() - started
    result.api_calls_all = _tracker_reads(kubesim)
    result.jobs_all = done
    return result


def _mean_usage(client: redis.Redis, keys: list[str]) -> float:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    sizes = [size for size in pipe.execute() if size]
    return sum(sizes) / len(sizes) if sizes else 0.0


def _stream_bytes_per_entry(client: redis.Redis) -> float:
    length = int(client.xlen(STREAM_KEY))
    size = client.memory_usage(STREAM_KEY, samples=0) or 0
    return size / length if length else 0.0
