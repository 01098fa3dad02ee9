"""The waiter polls with backoff, stops at the deadline and never exceeds its slots."""

from __future__ import annotations

import time

import anyio

from producer.gateway.waiting import Waiter
from worker.contracts import RequestState, RequestStatus

RID = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"


class Request:
    """A request that finishes after ``reads`` status reads."""

    def __init__(self, reads: int) -> None:
        self.reads = 0
        self.finish_after = reads

    def status(self, request_id: str) -> RequestStatus:
        self.reads += 1
        done = self.reads >= self.finish_after
        state = RequestState.SUCCEEDED if done else RequestState.QUEUED
        return RequestStatus(request_id=request_id, state=state)


def waiter(request: Request, **options: float) -> Waiter:
    values = {
        "max_seconds": 5.0,
        "max_waiting": 10,
        "poll_min_seconds": 0.01,
        "poll_max_seconds": 0.05,
        **options,
    }
    return Waiter(
        request.status,
        max_seconds=values["max_seconds"],
        max_waiting=int(values["max_waiting"]),
        poll_min_seconds=values["poll_min_seconds"],
        poll_max_seconds=values["poll_max_seconds"],
    )


def test_a_wait_returns_as_soon_as_the_request_is_final() -> None:
    request = Request(reads=3)
    status = anyio.run(waiter(request).wait, RID, 5.0)
    assert status.state is RequestState.SUCCEEDED
    assert request.reads == 3


def test_a_wait_returns_the_last_status_at_its_deadline() -> None:
    request = Request(reads=10_000)
    started = time.monotonic()
    status = anyio.run(waiter(request).wait, RID, 0.2)
    assert status.state is RequestState.QUEUED
    assert 0.2 <= time.monotonic() - started < 1.0
    # Backoff: 0.01, 0.02, 0.04, then 0.05 apart, so a handful of reads, not hundreds.
    assert request.reads < 10


def test_a_wait_longer_than_the_maximum_is_cut() -> None:
    request = Request(reads=10_000)
    started = time.monotonic()
    anyio.run(waiter(request, max_seconds=0.1).wait, RID, 3600.0)
    assert time.monotonic() - started < 1.0


def test_a_caller_beyond_the_slots_gets_the_current_status_at_once() -> None:
    slow = Request(reads=10_000)
    limited = waiter(slow, max_waiting=1)
    results: list[tuple[RequestState, float]] = []

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(limited.wait, RID, 0.5)
            await anyio.sleep(0.05)
            assert limited.waiting == 1
            started = time.monotonic()
            status = await limited.wait(RID, 0.5)
            results.append((status.state, time.monotonic() - started))

    anyio.run(scenario)
    ((state, took),) = results
    assert state is RequestState.QUEUED
    assert took < 0.1
    assert limited.waiting == 0


def test_many_callers_wait_at_once_without_a_thread_each() -> None:
    request = Request(reads=10_000)
    shared = waiter(request, max_waiting=500)
    peak = 0

    async def scenario() -> None:
        nonlocal peak
        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(shared.wait, RID, 5.0)
            # Each caller's first read runs in one of anyio's 40 worker threads; then it
            # waits on the event loop. No fixed sleep: a busy machine starts threads late.
            with anyio.fail_after(4.0):
                while shared.waiting < 200:
                    await anyio.sleep(0.01)
            peak = shared.waiting
            group.cancel_scope.cancel()

    anyio.run(scenario)
    assert peak == 200  # five times anyio's thread limit, waiting at once


def test_a_caller_that_went_away_frees_its_slot_at_the_next_poll() -> None:
    request = Request(reads=10_000)
    slots = waiter(request, max_waiting=1)
    checks = 0

    async def gone_after_two_polls() -> bool:
        nonlocal checks
        checks += 1
        return checks >= 2

    async def main() -> RequestStatus:
        return await slots.wait(RID, 5.0, disconnected=gone_after_two_polls)

    started = time.monotonic()
    status = anyio.run(main)
    assert status.state is RequestState.QUEUED
    assert time.monotonic() - started < 3.0  # well before the 5 s deadline
    assert slots.waiting == 0
