"""A burst under the fleet-wide limiter: drain time, API rate, nothing lost or doubled.

N create-jobs are accepted in one ``submit_many`` and drained by several worker
processes whose limiter (``K8S_RATE_LIMIT_QPS``/``_BURST``/``K8S_MAX_IN_FLIGHT``) is
on: they share one token bucket in Redis, so together they must not exceed it. A
sampler reads kubesim's request counters while the burst drains, which gives the API
request rate the cluster actually saw (whole run and busiest second).

Then the cluster is checked, not the queue: every accepted request ID must have
exactly one Job carrying its ``eksops.io/request-id`` label (lost = accepted IDs
with no Job; duplicates = Jobs beyond the first for one ID).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import redis

from bench.stack import Kubesim
from bench.workload import list_request_ids, manifest, wait_drained
from producer import EksOps
from worker.contracts import Operation
from worker.operations import ClusterClient

_SAMPLE_SECONDS = 0.1


@dataclass
class BurstResult:
    """What the burst measured and what the cluster holds afterwards."""

    items: int
    accepted: int
    accept_seconds: float
    drain_seconds: float
    api_creates: int
    throttled: int
    peak_one_second: int
    jobs_found: int
    lost: int
    duplicates: int
    stray: int
    succeeded: int
    failed: int
    rate_limit: float
    burst: int

    @property
    def api_rate(self) -> float:
        """Return Job creates per second over the whole drain."""
        return self.api_creates / self.drain_seconds

    @property
    def floor_seconds(self) -> float:
        """Return the shortest drain the bucket allows: the burst at once, the rest at rate."""
        return max(0.0, (self.accepted - self.burst) / self.rate_limit)


class _CreateSampler:
    """Samples kubesim's count of Job creates while the burst drains."""

    def __init__(self, kubesim: Kubesim) -> None:
        self._kubesim = kubesim
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._kubesim.creates()))
            self._stop.wait(_SAMPLE_SECONDS)

    def stop(self) -> int:
        """Stop sampling; return the most creates seen within any one second."""
        self._stop.set()
        self._thread.join()
        peak, first = 0, 0
        for now, count in self.samples:
            while self.samples[first][0] < now - 1.0:
                first += 1
            peak = max(peak, count - self.samples[first][1])
        return peak


def run_burst(
    eksops: EksOps,
    client: redis.Redis,
    kubesim: Kubesim,
    cluster: ClusterClient,
    *,
    items: int,
    namespace: str,
    rate_limit: float,
    burst: int,
    timeout: float = 1800,
) -> BurstResult:
    """Submit a burst of ``items`` create-jobs, drain it, then audit the cluster."""
    before = kubesim.admin.counters()["requests"]
    creates_before = kubesim.creates()
    sampler = _CreateSampler(kubesim)
    started = time.perf_counter()
    summary = eksops.submit_many(
        Operation.CREATE_JOB,
        ({"job_manifest": manifest(), "namespace": namespace} for _ in range(items)),
    )
    accepted_at = time.perf_counter()
    ids = [item.request_id for item in summary.items if item.request_id]
    finished = wait_drained(client, ids, timeout=timeout)
    peak = sampler.stop()
    after = kubesim.admin.counters()["requests"]

    found = Counter(list_request_ids(cluster, namespace))
    expected = set(ids)
    batch = eksops.batch(summary.batch_id)
    counts = batch.counts if batch is not None else {}
    return BurstResult(
        items=items,
        accepted=summary.accepted,
        accept_seconds=accepted_at - started,
        drain_seconds=finished - started,
        api_creates=kubesim.creates() - creates_before,
        throttled=_count(after, 429) - _count(before, 429),
        peak_one_second=peak,
        jobs_found=sum(found.values()),
        lost=sum(1 for rid in expected if found[rid] == 0),
        duplicates=sum(count - 1 for rid, count in found.items() if rid in expected and count > 1),
        stray=sum(count for rid, count in found.items() if rid not in expected),
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0),
        rate_limit=rate_limit,
        burst=burst,
    )


def _count(rows: list[dict[str, object]], code: int) -> int:
    return sum(int(str(row["count"])) for row in rows if row["code"] == code)
