"""The waiter wakes on the publish of a request's end, stops at its deadline, and never
exceeds its slots; a caller gone frees its slot and its subscription."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import fakeredis
import pytest

from producer.gateway.waiting import Waiter
from producer.notify import Notifier
from worker import events
from worker.contracts import RequestState, RequestStatus

RID = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"


class Request:
    """A request whose end a "worker" stores, then publishes, as workers do."""

    def __init__(self, redis: fakeredis.FakeRedis) -> None:
        self.redis = redis
        self.reads = 0
        self.final = False

    def status(self, request_id: str) -> RequestStatus:
        self.reads += 1
        state = RequestState.SUCCEEDED if self.final else RequestState.QUEUED
        return RequestStatus(request_id=request_id, state=state)

    def end_after(self, seconds: float) -> None:
        def end() -> None:
            time.sleep(seconds)
            self.final = True
            self.redis.publish(events.request_channel(RID), "succeeded")

        threading.Thread(target=end, daemon=True).start()


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def notifier(redis: fakeredis.FakeRedis) -> Iterator[Notifier]:
    shared = Notifier(redis)
    yield shared
    shared.close()


@pytest.fixture
def request_(redis: fakeredis.FakeRedis) -> Request:
    return Request(redis)


def waiter(request: Request, notifier: Notifier, **options: float) -> Waiter:
    return Waiter(
        request.status,
        notifier.subscribe,
        max_seconds=options.get("max_seconds", 5.0),
        max_waiting=int(options.get("max_waiting", 10)),
    )


def test_a_wait_wakes_the_moment_the_end_is_published(
    request_: Request, notifier: Notifier
) -> None:
    request_.end_after(0.3)
    started = time.monotonic()
    status = anyio.run(waiter(request_, notifier).wait, RID, 5.0)
    took = time.monotonic() - started
    assert status.state is RequestState.SUCCEEDED
    assert 0.3 <= took < 0.9  # woken, not at the next once-a-second read
    assert request_.reads == 2  # once before waiting, once when woken: no polling


def test_a_wait_returns_the_last_status_at_its_deadline(
    request_: Request, notifier: Notifier
) -> None:
    started = time.monotonic()
    status = anyio.run(waiter(request_, notifier).wait, RID, 0.2)
    assert status.state is RequestState.QUEUED
    assert 0.2 <= time.monotonic() - started < 1.0
    assert request_.reads <= 2


def test_a_wait_longer_than_the_maximum_is_cut(request_: Request, notifier: Notifier) -> None:
    started = time.monotonic()
    anyio.run(waiter(request_, notifier, max_seconds=0.1).wait, RID, 3600.0)
    assert time.monotonic() - started < 1.0


def test_a_caller_beyond_the_slots_gets_the_current_status_at_once(
    request_: Request, notifier: Notifier
) -> None:
    limited = waiter(request_, notifier, max_waiting=1)
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


def test_many_callers_wait_at_once_without_a_thread_each(
    request_: Request, notifier: Notifier
) -> None:
    shared = waiter(request_, notifier, max_waiting=500)
    peak = 0

    async def scenario() -> None:
        nonlocal peak
        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(shared.wait, RID, 5.0)
            # Each caller's subscribe and first read run in one of anyio's 40 worker
            # threads; then it waits on the event loop.
            with anyio.fail_after(4.0):
                while shared.waiting < 200:
                    await anyio.sleep(0.01)
            peak = shared.waiting
            request_.end_after(0)
            with anyio.fail_after(2.0):
                while shared.waiting:
                    await anyio.sleep(0.01)

    anyio.run(scenario)
    assert peak == 200  # five times anyio's thread limit, waiting at once
    assert request_.reads <= 2 * 200 + 200  # each woken once (a slow start may read again)


def test_a_caller_that_went_away_frees_its_slot_and_its_subscription(
    request_: Request, notifier: Notifier, redis: fakeredis.FakeRedis
) -> None:
    slots = waiter(request_, notifier, max_waiting=1)

    async def gone() -> bool:
        return True

    async def main() -> RequestStatus:
        return await slots.wait(RID, 5.0, disconnected=gone)

    started = time.monotonic()
    status = anyio.run(main)
    assert status.state is RequestState.QUEUED
    assert time.monotonic() - started < 2.0  # within a re-read, well before the 5 s
    assert slots.waiting == 0
    channel = events.request_channel(RID).encode()
    time.sleep(0.1)
    assert redis.pubsub_numsub(channel) == [(channel, 0)]
