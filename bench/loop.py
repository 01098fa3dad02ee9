"""Closed-loop load and latency statistics, shared by the direct and eksops phases.

N threads each run one request at a time, back to back, so exactly N are in flight.
After a warm-up (connections opened, caches filled, not counted) a window of
``duration`` seconds is measured: the rate is the number of requests that completed
inside the window divided by its length (counted by completion time, so no edge
effect favours short or long requests), and the latencies are theirs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass
class LoopResult:
    """What one closed-loop run measured."""

    concurrency: int
    completed: int
    window_seconds: float
    latencies_ms: list[float] = field(repr=False)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Return completed requests per second inside the window."""
        return self.completed / self.window_seconds if self.window_seconds else 0.0

    def p(self, fraction: float) -> float:
        """Return a latency percentile in milliseconds."""
        return percentile(self.latencies_ms, fraction)


def closed_loop(
    request: Callable[[int], None],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_errors: int = 20,
) -> LoopResult:
    """Run ``request(thread_index)`` from ``concurrency`` threads; measure a window."""
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def run(index: int) -> None:
        mine: list[float] = []
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                break
            try:
                request(index)
            except Exception as exc:  # reported, not fatal: the figures say how many
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if len(errors) >= max_errors:
                        break
                continue
            ended = time.perf_counter()
            if start_at <= ended <= stop_at:
                mine.append((ended - began) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=run, args=(index,), name=f"bench-caller-{index}", daemon=True)
        for index in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoopResult(concurrency, len(latencies), duration, latencies, errors)
