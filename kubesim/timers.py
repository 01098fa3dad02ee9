"""A timer heap for the controllers: "call this at that wall-clock time".

Controllers (job, kubelet, garbage collector, TTL, namespace, event expiry) never
sleep; they schedule the next moment something changes for an object and return.
One ``loop.call_at`` is armed for the earliest deadline only, so 100,000 running
Pods cost one heap entry each and no task. Due timers run in deadline order in one
batch, and ``kick()`` runs work queued for "as soon as possible" (the way informer
handlers enqueue a sync) right after the current request.

Entries are keyed: scheduling a key again replaces the earlier deadline (the old
heap entry is skipped when it comes up), which is how a controller re-plans.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)
Callback = Callable[..., None]
"""Called as ``callback(now, *args)``."""


class Timers:
    """Keyed one-shot timers on wall-clock time, plus an as-soon-as-possible queue."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, tuple[float, int, Callback, tuple[Any, ...]]] = {}
        self._seq = itertools.count()
        self._soon: dict[Hashable, Callback] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._armed: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")
        self._soon_pending = False

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Start firing on ``loop`` (None: only ``run_due`` fires timers, as in unit use)."""
        self._loop = loop
        self._armed, self._armed_at = None, float("inf")
        self._arm()
        if self._soon:
            self._request_soon()

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()
        self._soon.clear()
        if self._armed is not None:
            self._armed.cancel()
        self._armed, self._armed_at = None, float("inf")

    def __len__(self) -> int:
        return len(self._due)

    def at(self, when: float, key: Hashable, callback: Callback, *args: Any) -> None:
        """Run ``callback(now, *args)`` at ``when`` (epoch seconds); replaces ``key``'s timer.

        Pass a shared callable and the arguments rather than a closure: 100,000
        pending timers then hold an argument tuple each, not a function and cells.
        """
        seq = next(self._seq)
        self._due[key] = (when, seq, callback, args)
        heapq.heappush(self._heap, (when, seq, key))
        if when < self._armed_at:
            self._arm()

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)
        self._soon.pop(key, None)

    def soon(self, key: Hashable, callback: Callback) -> None:
        """Run ``callback`` once, right after the current request (coalesced per key)."""
        self._soon[key] = callback
        self._request_soon()

    def _request_soon(self) -> None:
        if self._loop is not None and not self._soon_pending:
            self._soon_pending = True
            self._loop.call_soon(self._run_soon)

    def _run_soon(self) -> None:
        self._soon_pending = False
        self.run_soon_now()

    def run_soon_now(self) -> None:
        """Drain the as-soon-as-possible queue (work may queue more; all of it runs)."""
        rounds = 0
        while self._soon and rounds < 100:
            rounds += 1
            batch, self._soon = self._soon, {}
            now = time.time()
            for callback in batch.values():
                _safely(callback, now)

    def _arm(self) -> None:
        if self._loop is None:
            return
        while self._heap and self._due.get(self._heap[0][2], _GONE)[1] != self._heap[0][1]:
            heapq.heappop(self._heap)
        if not self._heap:
            return
        when = self._heap[0][0]
        if self._armed is not None:
            if when >= self._armed_at:
                return
            self._armed.cancel()
        delay = max(0.0, when - time.time())
        self._armed = self._loop.call_at(self._loop.time() + delay, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        self._armed, self._armed_at = None, float("inf")
        self.run_due(time.time())
        self.run_soon_now()
        self._arm()

    def run_due(self, now: float) -> int:
        """Run every timer due by ``now``; returns how many ran."""
        ran = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            _when, seq, key = heapq.heappop(heap)
            entry = self._due.get(key)
            if entry is None or entry[1] != seq:
                continue
            del self._due[key]
            ran += 1
            _safely(entry[2], now, *entry[3])
        return ran

    def next_deadline(self) -> float | None:
        while self._heap:
            when, seq, key = self._heap[0]
            entry = self._due.get(key)
            if entry is not None and entry[1] == seq:
                return when
            heapq.heappop(self._heap)
        return None


_GONE = (0.0, -1, None, ())


def _safely(callback: Callback, now: float, *args: Any) -> None:
    try:
        callback(now, *args)
    except Exception:  # a controller bug must not stop the others
        log.exception("controller callback failed")
