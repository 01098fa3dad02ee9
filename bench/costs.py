"""Costs that must stay flat: worker memory, token presigns, status polls.

* Memory: the resident set (VmRSS of the worker's process tree) after it has run
  10,000 and 100,000 create-job tasks (scaled down with ``--quick``), fed in chunks
  through ``submit_many`` and sampled after each chunk has drained.
* Presigns: kubesim counts the distinct bearer tokens it verified; each process that
  talks to the cluster should have minted one for the whole run (a token is reused
  for 14 minutes). Two processes minting in the same second with the same
  credentials produce the same token and count once.
* Polls: a finished request is polled many times with ``EksOps.status``; kubesim's
  request counters must not move (a poll reads Redis only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from bench.procs import rss_bytes
from bench.stack import Kubesim
from bench.workload import RESULT_PREFIX, manifest, wait_drained
from producer import EksOps
from worker.contracts import Operation, RequestState

_CHUNK = 10_000
_MB = 1024 * 1024


@dataclass
class MemoryResult:
    """RSS of one worker process tree as the number of tasks it ran grows."""

    curve: list[tuple[int, float]] = field(default_factory=list)
    marks: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    tasks: int = 0

    @property
    def growth(self) -> float:
        """Return RSS at the last mark relative to the first (0.05 = 5 % more)."""
        values = [self.marks[mark] for mark in sorted(self.marks)]
        return values[-1] / values[0] - 1 if len(values) > 1 else 0.0


def tasks_run(client: redis.Redis) -> int:
    """Return how many results the database holds (= tasks its worker ran)."""
    return sum(1 for _ in client.scan_iter(match=RESULT_PREFIX + "*", count=10_000))


def run_memory(
    eksops: EksOps,
    client: redis.Redis,
    worker_pid: int,
    *,
    marks: list[int],
    namespace: str,
    timeout: float = 3600,
    progress: bool = False,
) -> MemoryResult:
    """Feed the worker until it has run each of ``marks`` tasks; sample its RSS."""
    result = MemoryResult()
    done = tasks_run(client)
    result.curve.append((done, rss_bytes(worker_pid) / _MB))
    started = time.perf_counter()
    for mark in sorted(marks):
        while done < mark:
            count = min(_CHUNK, mark - done)
            summary = eksops.submit_many(
                Operation.CREATE_JOB,
                ({"job_manifest": manifest(), "namespace": namespace} for _ in range(count)),
                durable=False,
            )
            ids = [item.request_id for item in summary.items if item.request_id]
            wait_drained(client, ids, timeout=timeout, poll=0.05)
            done += len(ids)
            result.curve.append((done, rss_bytes(worker_pid) / _MB))
            if progress:
                rate = (done - result.curve[0][0]) / (time.perf_counter() - started)
                print(
                    f"  memory: {done:,} tasks, worker RSS {result.curve[-1][1]:.1f} MiB"
                    f" ({rate:.0f} tasks/s)",
                    flush=True,
                )
        result.marks[mark] = result.curve[-1][1]
    result.seconds = time.perf_counter() - started
    result.tasks = done - result.curve[0][0]
    return result


@dataclass
class PollResult:
    """Polls of one finished request and the API calls they caused."""

    polls: int
    seconds: float
    api_calls_during: int
    state: str

    @property
    def per_poll_ms(self) -> float:
        """Return the mean time of one ``status()`` call."""
        return self.seconds * 1000 / self.polls


def run_polls(eksops: EksOps, kubesim: Kubesim, request_id: str, *, polls: int) -> PollResult:
    """Poll ``request_id`` ``polls`` times; count kubesim requests meanwhile."""
    before = kubesim.admin.counters()["total"]
    started = time.perf_counter()
    state = RequestState.UNKNOWN
    for _ in range(polls):
        state = eksops.status(request_id).state
    seconds = time.perf_counter() - started
    after = kubesim.admin.counters()["total"]
    # Admin calls are not counted (only EKS and Kubernetes API requests are).
    return PollResult(polls, seconds, after - before, state.value)
