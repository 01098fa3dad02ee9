"""Flow control: singles beside bursts, a late batch beside a large one, a cancel.

Run on the burst's workers (the fleet limiter on, at the bench limit), after the burst:

* **unloaded single latency**: one create-job at a time, ``create_job`` + ``result``
  through eksops, against the direct client call on the same cluster (p50/p95), the
  two alternated; the difference is what eksops adds to one request;
* **interactive during a burst**: a large batch is submitted, and while it drains one
  single create-job at a time is submitted and waited for (p50/p95/max, and where the
  time went), to compare with twice the unloaded latency plus one limiter slot
  (1 / the limit); the batch's progress is read from the cluster's count of Jobs
  created, not through eksops, so the singles' thread does nothing else;
* **a late batch**: a small batch submitted a moment after the large one: the time
  from its submit to its first request's start (read from the request records);
* **cancel**: the large batch is cancelled part-way; the time the cancel call takes,
  the time until nothing of it runs any more, and the Jobs created after the cancel
  beyond the requests that were running then (must be 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.loop import percentile
from bench.workload import manifest, validated_manifest
from producer import EksOps
from worker.contracts import Operation
from worker.errors import EksOpsError
from worker.names import new_request_id
from worker.operations import ClusterClient
from worker.operations.jobs import build_job_body, job_name
from worker.records import read_record


@dataclass(frozen=True)
class Stages:
    """Where one unloaded single's time went: submit call, queue, run, the wake-up."""

    submit_ms: float
    queued_ms: float
    run_ms: float
    notify_ms: float


@dataclass
class FlowResult:
    """What the flow phase measured (milliseconds unless named otherwise)."""

    unloaded_direct_ms: list[float] = field(repr=False)
    unloaded_eksops_ms: list[float] = field(repr=False)
    during_burst_ms: list[float] = field(repr=False)
    burst_items: int
    late_batch_first_start_s: float
    large_batch_succeeded_when_late_started: int
    cancel_call_s: float
    cancel_settled_s: float
    cancelled: int
    running_at_cancel: int
    ended_at_cancel: int
    created_after_cancel: int
    rate_limit: float
    stages: list[Stages] = field(default_factory=list, repr=False)
    during_stages: list[Stages] = field(default_factory=list, repr=False)

    def stage_p50(self, during: bool = False) -> dict[str, float]:
        """Return the median of each stage of the unloaded singles (or of those during
        the burst)."""
        stages = self.during_stages if during else self.stages
        return {
            name: percentile([getattr(s, f"{name}_ms") for s in stages], 0.5)
            for name in ("submit", "queued", "run", "notify")
        }

    def stats(self, values: list[float]) -> dict[str, float]:
        return {
            "p50": percentile(values, 0.5),
            "p95": percentile(values, 0.95),
            "max": percentile(values, 1.0),
            "n": float(len(values)),
        }

    @property
    def added_p50_ms(self) -> float:
        return percentile(self.unloaded_eksops_ms, 0.5) - percentile(self.unloaded_direct_ms, 0.5)

    @property
    def interactive_bound_ms(self) -> float:
        """Twice the unloaded eksops latency (p50) plus one limiter slot."""
        return 2 * percentile(self.unloaded_eksops_ms, 0.5) + 1000 / self.rate_limit


def _direct(client: ClusterClient, namespace: str, count: int) -> list[float]:
    body_manifest = validated_manifest(namespace)
    api = client.batch
    took = []
    for _ in range(count):
        rid = new_request_id()
        body = build_job_body(
            body_manifest, name=job_name(body_manifest, rid), namespace=namespace, request_id=rid
        )
        began = time.perf_counter()
        api.create_namespaced_job(namespace=namespace, body=body)  # type: ignore[arg-type]
        took.append((time.perf_counter() - began) * 1000)
    return took


def _single(eksops: EksOps, namespace: str, stages: list[Stages] | None = None) -> float:
    """One create-job as an upstream app makes it (``create_job`` + ``result``), in ms;
    its stages are read from its status afterwards, outside the time measured. The
    manifest is built before the clock starts, as the direct call's body is."""
    job: dict[str, Any] = manifest()
    began = time.perf_counter()
    submission = eksops.create_job(job, namespace)
    submitted = time.perf_counter()
    try:
        eksops.result(submission.request_id, 60)
    except EksOpsError as exc:
        raise RuntimeError(f"a single create-job failed: {exc}") from exc
    woken = datetime.now(UTC)
    took = (time.perf_counter() - began) * 1000
    status = eksops.status(submission.request_id)
    if stages is not None and status.submitted_at and status.started_at and status.finished_at:
        at = datetime.fromisoformat
        stages.append(
            Stages(
                submit_ms=(submitted - began) * 1000,
                queued_ms=(at(status.started_at) - at(status.submitted_at)).total_seconds() * 1000,
                run_ms=(at(status.finished_at) - at(status.started_at)).total_seconds() * 1000,
                notify_ms=(woken - at(status.finished_at)).total_seconds() * 1000,
            )
        )
    return took


def _first_start(eksops: EksOps, request_ids: list[str]) -> datetime | None:
    starts = []
    for rid in request_ids:
        record = read_record(eksops.redis, rid)
        if record is not None and record.started_at:
            starts.append(datetime.fromisoformat(record.started_at))
    return min(starts) if starts else None


def run_flow(
    eksops: EksOps,
    client: ClusterClient,
    *,
    namespace: str,
    singles: int,
    burst_items: int,
    rate_limit: float,
    created: Callable[[], int],
) -> FlowResult:
    """Run the four measurements on a worker fleet with its limiter at ``rate_limit``.

    ``created``: how many Jobs the cluster has created so far (the large batch's
    progress, read without going through eksops).
    """
    for _ in range(5):  # warm connections and caches
        _single(eksops, namespace)
    # Alternated, one of each at a time: the machine's pace drifts over a minute, and
    # both sides of the difference then see the same drift.
    direct: list[float] = []
    unloaded: list[float] = []
    stages: list[Stages] = []
    for _ in range(singles):
        direct += _direct(client, namespace, 1)
        unloaded.append(_single(eksops, namespace, stages))

    created_before = created()
    large = eksops.submit_many(
        Operation.CREATE_JOB,
        [{"job_manifest": manifest(), "namespace": namespace} for _ in range(burst_items)],
    )
    time.sleep(0.5)
    late_at = datetime.now().astimezone()
    late = eksops.submit_many(
        Operation.CREATE_JOB,
        [{"job_manifest": manifest(), "namespace": namespace} for _ in range(50)],
    )
    late_ids = [item.request_id for item in late.items if item.request_id]
    late_started: datetime | None = None
    large_done_then = 0
    during: list[float] = []
    during_stages: list[Stages] = []
    deadline = time.monotonic() + 600
    # Singles while the large batch drains, until about half of it has run.
    while time.monotonic() < deadline:
        during.append(_single(eksops, namespace, during_stages))
        # Jobs of the large batch: less the singles', and (once it runs) the late
        # batch's, counted in full so as not to stop early.
        done_so_far = created() - created_before - len(during)
        if late_started is None and (late_started := _first_start(eksops, late_ids)):
            large_done_then = done_so_far
        if done_so_far - len(late_ids) >= burst_items // 2:
            break
        time.sleep(0.05)
    if late_started is None:
        late_started = _first_start(eksops, late_ids)
    began = time.perf_counter()
    done = eksops.cancel_batch(large.batch_id)
    cancel_call = time.perf_counter() - began
    while True:
        status = eksops.batch(large.batch_id)
        assert status is not None
        if status.done:
            break
        time.sleep(0.02)
    settled = time.perf_counter() - began
    ran = status.counts["succeeded"] + status.counts["failed"]
    eksops.wait(late_ids[-1], 120)
    return FlowResult(
        unloaded_direct_ms=direct,
        unloaded_eksops_ms=unloaded,
        during_burst_ms=during,
        burst_items=burst_items,
        late_batch_first_start_s=(
            (late_started - late_at).total_seconds() if late_started else float("nan")
        ),
        large_batch_succeeded_when_late_started=large_done_then,
        cancel_call_s=cancel_call,
        cancel_settled_s=settled,
        cancelled=done.cancelled,
        running_at_cancel=done.running,
        ended_at_cancel=done.ended,
        created_after_cancel=max(0, ran - done.ended - done.running),
        rate_limit=rate_limit,
        stages=stages,
        during_stages=during_stages,
    )
