"""The fleet-wide limiter: token bucket, in-flight bound, 429 pauses, leases."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.operations.limiter import (
    _ACQUIRE,
    _EARLY,
    _LINE_STEP_SECONDS,
    Limits,
    RedisLimiter,
    release_early,
)

IN_FLIGHT = "eksops:limit:prod@us-east-1:inflight"


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def limiter(client: object, **limits: float) -> RedisLimiter:
    values = {
        "rate_per_second": 0.0,
        "burst": 1,
        "max_in_flight": 0,
        "lease_seconds": 5.0,
        **limits,
    }
    return RedisLimiter(client, "prod@us-east-1", Limits(**values))  # type: ignore[arg-type]


def take(limiter: RedisLimiter, count: int) -> float:
    started = time.monotonic()
    for _ in range(count):
        with limiter.slot():
            pass
    return time.monotonic() - started


def test_a_burst_passes_at_once_then_the_rate_applies(client: fakeredis.FakeRedis) -> None:
    bucket = limiter(client, rate_per_second=50, burst=5)
    assert take(bucket, 5) < 0.1
    assert take(bucket, 10) >= 10 / 50 * 0.9


def test_two_processes_share_one_bucket(client: fakeredis.FakeRedis) -> None:
    first, second = (
        limiter(client, rate_per_second=50, burst=4),
        limiter(client, rate_per_second=50, burst=4),
    )
    # Nine slots from one bucket of four: five refills at 50/s, whichever limiter asks
    # (counted from the first take: the bucket refills while the first four are taken;
    # with a bucket each, the second would pass its first four at once).
    started = time.monotonic()
    take(first, 4)
    take(second, 5)
    assert time.monotonic() - started >= 5 / 50 * 0.9


def test_calls_in_flight_are_bounded_fleet_wide(client: fakeredis.FakeRedis) -> None:
    bounded = limiter(client, max_in_flight=2)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with bounded.slot():
            holding.set()
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for holder in holders:
        holder.start()
    holding.wait(5)
    time.sleep(0.05)
    waited = threading.Event()

    def third() -> None:
        with limiter(client, max_in_flight=2).slot():
            waited.set()

    late = threading.Thread(target=third)
    late.start()
    assert not waited.wait(0.3)
    release.set()
    assert waited.wait(5)
    for thread in (*holders, late):
        thread.join(5)


def test_a_slot_held_by_a_dead_worker_expires_with_its_lease(client: fakeredis.FakeRedis) -> None:
    crashed = limiter(client, max_in_flight=1, lease_seconds=0.3)
    assert crashed._wait_for_slot("dead-worker")  # taken, never released
    assert take(limiter(client, max_in_flight=1, lease_seconds=0.3), 1) >= 0.2


def test_a_429_pauses_every_worker_for_the_retry_after(client: fakeredis.FakeRedis) -> None:
    limiter(client, rate_per_second=1000, burst=1000).pause(0.3)
    assert take(limiter(client, rate_per_second=1000, burst=1000), 1) >= 0.25


def test_a_pause_is_never_shortened(client: fakeredis.FakeRedis) -> None:
    paused = limiter(client, rate_per_second=1000, burst=1000)
    paused.pause(0.4)
    paused.pause(0.05)
    assert take(paused, 1) >= 0.3


def test_without_redis_calls_pass_and_the_problem_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    open_limiter = limiter(dead, rate_per_second=1, burst=1, max_in_flight=1)
    with caplog.at_level(logging.WARNING):
        assert take(open_limiter, 20) < 2
    assert "rate limiter unavailable" in caplog.text
    assert caplog.text.count("rate limiter unavailable") == 1


class _Asked(Exception):
    """Raised by a sleep that ends a caller's wait after its first answer."""


def ask_once(limiter_: RedisLimiter, holder: str) -> float:
    """Ask for a slot once, as ``holder``; return how long the caller would sleep."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        raise _Asked

    limiter_._sleep = sleep
    with pytest.raises(_Asked):
        limiter_._wait_for_slot(holder)
    return slept[0]


def test_a_slot_held_longer_than_its_lease_is_kept(client: fakeredis.FakeRedis) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter(client, max_in_flight=1, lease_seconds=1.5).slot():
            holding.set()
            release.wait(8)

    slow = threading.Thread(target=hold)
    slow.start()
    holding.wait(5)
    threading.Timer(4.0, release.set).start()
    # Without renewal the slot would lapse after 1.5 s and this caller would take it
    # (renewed every 0.5 s: a renewer starved for a second on a busy machine still keeps it).
    assert take(limiter(client, max_in_flight=1, lease_seconds=1.5), 1) >= 3.5
    slow.join(8)


def test_callers_waiting_for_a_slot_are_served_first_come_first_served(
    client: fakeredis.FakeRedis,
) -> None:
    first = limiter(client, max_in_flight=1)
    assert first._wait_for_slot("first")
    served: list[int] = []

    def wait(number: int) -> None:
        with limiter(client, max_in_flight=1).slot():
            served.append(number)
            time.sleep(0.01)

    waiters = []
    for number in range(5):
        waiters.append(threading.Thread(target=wait, args=(number,)))
        waiters[-1].start()
        # The next caller arrives once this one is in line.
        deadline = time.monotonic() + 5
        while client.zcard("eksops:limit:prod@us-east-1:line") < number + 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    client.zrem("eksops:limit:prod@us-east-1:inflight", "first")
    for waiter in waiters:
        waiter.join(5)
    assert served == [0, 1, 2, 3, 4]


def test_callers_far_back_in_line_ask_less_often(client: fakeredis.FakeRedis) -> None:
    assert limiter(client, max_in_flight=1)._wait_for_slot("holder")
    first = ask_once(limiter(client, max_in_flight=1), "first-in-line")
    for number in range(3):
        ask_once(limiter(client, max_in_flight=1), f"waiter-{number}")
    fifth = ask_once(limiter(client, max_in_flight=1), "fifth-in-line")
    assert first < 2 * _LINE_STEP_SECONDS
    assert fifth >= 5 * _LINE_STEP_SECONDS
    again = ask_once(limiter(client, max_in_flight=1), "first-in-line")
    assert again < 2 * _LINE_STEP_SECONDS  # it kept its place


def test_a_caller_that_stopped_asking_leaves_the_line(client: fakeredis.FakeRedis) -> None:
    assert limiter(client, max_in_flight=1)._wait_for_slot("holder")
    ask_once(limiter(client, max_in_flight=1), "vanished")  # in line, then its worker died
    client.zrem("eksops:limit:prod@us-east-1:inflight", "holder")
    assert 1.5 <= take(limiter(client, max_in_flight=1), 1) < 5


def test_a_freed_slot_rides_on_the_next_acquire(client: fakeredis.FakeRedis) -> None:
    one = limiter(client, max_in_flight=1)
    assert one._wait_for_slot("first")
    one._ended.add("first")  # its call ended; no thread has freed it yet
    started = time.monotonic()
    assert one._wait_for_slot("second")  # frees "first" in the same step, then takes
    assert time.monotonic() - started < 0.1
    assert client.zrange("eksops:limit:prod@us-east-1:inflight", 0, -1) == [b"second"]


def test_a_slot_is_freed_in_the_background_right_after_its_call(
    client: fakeredis.FakeRedis,
) -> None:
    one = limiter(client, max_in_flight=1)
    with one.slot():
        assert client.zcard("eksops:limit:prod@us-east-1:inflight") == 1
    deadline = time.monotonic() + 1
    while client.zcard("eksops:limit:prod@us-east-1:inflight") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.zcard("eksops:limit:prod@us-east-1:inflight") == 0
    assert take(limiter(client, max_in_flight=1), 1) < 0.1  # another process gets it at once


def test_a_freed_slot_riding_on_an_acquire_during_a_pause_is_freed_all_the_same(
    client: fakeredis.FakeRedis,
) -> None:
    two = limiter(client, max_in_flight=2)
    assert two._wait_for_slot("first")
    two._ended.add("first")
    two.pause(0.3)
    asked = threading.Thread(target=two._wait_for_slot, args=("second",))
    asked.start()  # answered "paused" first: "first" must not wait for its lease
    time.sleep(0.1)
    assert client.zrange("eksops:limit:prod@us-east-1:inflight", 0, -1) == []
    asked.join(5)
    assert client.zrange("eksops:limit:prod@us-east-1:inflight", 0, -1) == [b"second"]


# --- the early ask: a slot asked in the request's start trip ------------------------


@pytest.fixture(autouse=True)
def _no_early_slot_left() -> Iterator[None]:
    yield
    early = _EARLY.get()
    release_early()
    assert early is None, "an early slot was left to the next request of this thread"


def ask_early(limiter_: RedisLimiter, client: fakeredis.FakeRedis) -> None:
    """Send the early ask in a pipeline of its own, as a request's start sends it."""
    pipe = client.pipeline(transaction=False)
    read = limiter_.ask_early(pipe)
    assert read is not None
    (reply,) = pipe.execute(raise_on_error=False)
    read(reply)


def freed(client: fakeredis.FakeRedis) -> bool:
    deadline = time.monotonic() + 2
    while client.zcard(IN_FLIGHT) and time.monotonic() < deadline:
        time.sleep(0.005)
    return client.zcard(IN_FLIGHT) == 0


@pytest.mark.timeout(10)
def test_an_early_slot_is_the_next_calls_own_and_is_freed_after_it(
    client: fakeredis.FakeRedis,
) -> None:
    one = limiter(client, max_in_flight=1)
    client.script_load(_ACQUIRE)
    ask_early(one, client)
    (granted,) = client.zrange(IN_FLIGHT, 0, -1)
    started = time.monotonic()
    with one.slot():  # the only slot is the early one: asking again would wait
        assert client.zrange(IN_FLIGHT, 0, -1) == [granted]
    assert time.monotonic() - started < 0.5
    assert freed(client)


def test_an_early_ask_that_finds_no_slot_leaves_nothing_and_the_call_waits_its_turn(
    client: fakeredis.FakeRedis,
) -> None:
    other = limiter(client, max_in_flight=1)
    assert other._wait_for_slot("busy")
    one = limiter(client, max_in_flight=1)
    ask_early(one, client)
    assert client.zrange(IN_FLIGHT, 0, -1) == [b"busy"]
    assert client.zcard("eksops:limit:prod@us-east-1:line") == 0  # never joined the line
    done = threading.Event()

    def call() -> None:
        with one.slot():
            done.set()

    caller = threading.Thread(target=call)
    caller.start()
    assert not done.wait(0.2)  # it asks as usual, and waits for the slot
    client.zrem(IN_FLIGHT, "busy")
    assert done.wait(5)
    caller.join(5)


def test_an_early_slot_not_used_is_given_back(client: fakeredis.FakeRedis) -> None:
    one = limiter(client, max_in_flight=1)
    client.script_load(_ACQUIRE)
    ask_early(one, client)
    assert client.zcard(IN_FLIGHT) == 1
    release_early()  # the request did not run
    assert freed(client)
    assert take(limiter(client, max_in_flight=1), 1) < 0.5


def test_the_token_of_an_early_slot_not_used_goes_back_to_the_bucket(
    client: fakeredis.FakeRedis,
) -> None:
    bucket = limiter(client, rate_per_second=0.01, burst=2, max_in_flight=4)
    client.script_load(_ACQUIRE)
    ask_early(bucket, client)
    release_early()
    tokens = float(client.hget("eksops:limit:prod@us-east-1:bucket", "tokens") or 0)
    assert tokens == pytest.approx(2, abs=0.1)  # back to the burst, and never above it
    assert client.zcard(IN_FLIGHT) == 0


@pytest.mark.timeout(10)
def test_an_early_slot_whose_reply_was_lost_is_freed_for_the_next_call(
    client: fakeredis.FakeRedis,
) -> None:
    one = limiter(client, max_in_flight=1, lease_seconds=60)
    client.script_load(_ACQUIRE)
    pipe = client.pipeline(transaction=False)
    read = one.ask_early(pipe)
    assert read is not None
    pipe.execute(raise_on_error=False)  # granted in Redis...
    assert client.zcard(IN_FLIGHT) == 1
    read(ConnectionError("lost"))  # ...but the reply never came back
    assert _EARLY.get() is None  # nothing held for a call
    started = time.monotonic()
    with one.slot():  # the only slot: freed by this ask, not after the 60 s lease
        assert client.zcard(IN_FLIGHT) == 1
    assert time.monotonic() - started < 0.5


def test_an_ask_sent_again_after_it_was_granted_is_still_granted(
    client: fakeredis.FakeRedis,
) -> None:
    one = limiter(client, max_in_flight=1, rate_per_second=0.01, burst=5)
    args = one._args("holder", "1")
    assert one._acquire(keys=one._keys, args=args) == 0
    assert one._acquire(keys=one._keys, args=args) == 0  # its reply was lost: sent again
    assert client.zrange(IN_FLIGHT, 0, -1) == [b"holder"]
    tokens = float(client.hget("eksops:limit:prod@us-east-1:bucket", "tokens") or 0)
    assert tokens == pytest.approx(4, abs=0.1)  # one token, not two


def test_an_early_token_of_a_rate_only_limiter_is_the_calls_own(
    client: fakeredis.FakeRedis,
) -> None:
    bucket = limiter(client, rate_per_second=0.01, burst=2)
    client.script_load(_ACQUIRE)
    ask_early(bucket, client)
    with bucket.slot():
        pass
    tokens = float(client.hget("eksops:limit:prod@us-east-1:bucket", "tokens") or 0)
    assert 0.9 < tokens < 1.1  # one call, one token


def test_an_early_ask_after_a_script_flush_is_not_granted_and_the_call_asks_as_usual(
    client: fakeredis.FakeRedis,
) -> None:
    one = limiter(client, max_in_flight=1)
    client.script_flush()
    ask_early(one, client)  # NOSCRIPT: read as "not granted"
    assert client.zcard(IN_FLIGHT) == 0
    with one.slot():  # loads the script and takes the slot
        assert client.zcard(IN_FLIGHT) == 1
