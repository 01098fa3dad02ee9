"""How big each phase is: the full run (``make bench``) and ``--quick`` (under a minute).

Sizes are the only difference between the two; every phase runs in both, so a quick
run prints every figure (with fewer samples, and memory marks scaled down: it says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    """The sizes and settings of one benchmark run."""

    name: str
    latency_ms: float = 20.0
    concurrencies: tuple[int, ...] = (8, 32)
    rounds: int = 2
    window_seconds: float = 6.0
    warmup_seconds: float = 1.0
    drain_tasks: int = 3_000
    noop_tasks: int = 5_000
    noop_window_seconds: float = 4.0
    accept_items: int = 10_000
    burst_items: int = 10_000
    burst_workers: int = 2
    burst_worker_concurrency: int = 16
    # Worker processes behind each concurrency's threads (split evenly): one per core.
    worker_processes: int = 2
    # The bench limit: low enough that the limiter, not the machine, sets the pace.
    burst_qps: float = 100.0
    burst_bucket: int = 100
    burst_max_in_flight: int = 64
    memory_marks: tuple[int, ...] = (10_000, 100_000)
    polls: int = 2_000
    # The job tracker: a burst of Jobs ending ``tracking_seconds`` after creation (lag,
    # API calls), then more up to the last memory mark (RSS flat from first to last).
    tracking_jobs: int = 10_000
    tracking_memory_jobs: int = 100_000
    tracking_seconds: float = 15.0
    # Flow control, on the burst's workers: singles one at a time (unloaded, then beside
    # a batch of ``flow_items``), a late batch behind it, then its cancel.
    flow_singles: int = 200
    flow_items: int = 10_000
    profile_seconds: float = 8.0
    # Celery task events (Flower's view: each request of a chunk too) on the e2e workers;
    # off (--no-task-events) to measure what they cost.
    task_events: bool = True
    # Chunk items whose task events the harness sends to measure their cost.
    event_requests: int = 20_000
    notes: list[str] = field(default_factory=list)


FULL = Plan(name="full")

QUICK = Plan(
    name="quick",
    rounds=1,
    window_seconds=2.0,
    warmup_seconds=0.5,
    # A drain of a few hundred tasks is a dozen chunks: its start and tail weigh as
    # much as its middle and the ratio says more about them than about the worker.
    drain_tasks=1_000,
    noop_tasks=500,
    noop_window_seconds=1.5,
    accept_items=10_000,
    burst_items=300,
    memory_marks=(400, 800),
    polls=300,
    tracking_jobs=1_000,
    tracking_memory_jobs=3_000,
    tracking_seconds=5.0,
    profile_seconds=4.0,
    flow_singles=30,
    flow_items=600,
    event_requests=4_000,
    notes=[
        "quick run: short windows, one round, 1,000-task drains, a 300-job burst, memory "
        "marks 400 and 800 tasks, 1,000 then 3,000 tracked Jobs (the full run: 3,000-task "
        "drains, 10,000 and 100,000 tasks, 10,000 then 100,000 tracked Jobs)"
    ],
)
