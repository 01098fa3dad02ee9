"""A thread's own subscription: confirmed before it reads, woken in the waiting thread
with what was published, and its connection kept for the thread's next wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis as redis_lib

from producer.notify import Listener


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def listener(redis: fakeredis.FakeRedis) -> Iterator[Listener]:
    own = Listener(redis)
    yield own
    own.close()


def publish_after(redis: fakeredis.FakeRedis, seconds: float, channel: str, data: str) -> None:
    threading.Timer(seconds, lambda: redis.publish(channel, data)).start()


def test_a_publish_right_after_subscribing_is_never_missed(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    with listener.subscribe("ch-a") as subscription:
        # Confirmed when subscribe returns: a publish now reaches it.
        assert redis.pubsub_numsub("ch-a") == [(b"ch-a", 1)]
        redis.publish("ch-a", "ended")
        assert subscription.wait(1.0)
        assert subscription.take_message() == b"ended"
        assert subscription.take_message() is None


def test_a_wait_wakes_with_the_publish_and_times_out_without_one(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    with listener.subscribe("ch-b") as subscription:
        started = time.monotonic()
        assert not subscription.wait(0.2)
        assert 0.2 <= time.monotonic() - started < 0.6
        publish_after(redis, 0.2, "ch-b", "done")
        started = time.monotonic()
        assert subscription.wait(5.0)
        assert time.monotonic() - started < 1.0
        assert subscription.take_message() == b"done"


def test_a_threads_next_wait_reuses_its_connection_and_skips_what_the_last_left(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    with listener.subscribe("ch-old") as first:
        pass
    redis.publish("ch-old", "late")  # nobody listens: the unsubscribe went first
    with listener.subscribe("ch-new") as second:
        redis.publish("ch-new", "mine")
        assert second.wait(1.0)
        assert second.take_message() == b"mine"
    assert first._pubsub is None
    assert second._pubsub is None
    assert len(listener._opened) == 1  # one connection for the thread's waits
    assert redis.pubsub_numsub("ch-old", "ch-new") == [(b"ch-old", 0), (b"ch-new", 0)]


def test_a_wait_inside_a_wait_gets_a_connection_of_its_own(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    with listener.subscribe("outer") as outer:
        with listener.subscribe("inner") as inner:
            redis.publish("inner", "i")
            redis.publish("outer", "o")
            assert inner.wait(1.0)
            assert inner.take_message() == b"i"
        assert len(listener._opened) == 1  # the inner one is closed with its wait
        assert outer.wait(1.0)
        assert outer.take_message() == b"o"


def test_each_thread_waits_on_its_own_connection(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    woken: dict[str, bytes | None] = {}

    def wait(name: str) -> None:
        with listener.subscribe(name) as subscription:
            barrier.wait()
            subscription.wait(5.0)
            woken[name] = subscription.take_message()

    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=wait, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait()
    redis.publish("t0", "zero")
    redis.publish("t1", "one")
    for thread in threads:
        thread.join(5)
    assert woken == {"t0": b"zero", "t1": b"one"}
    assert len(listener._opened) == 2


def test_a_lost_connection_wakes_the_waiter_to_read_and_the_next_wait_reconnects(
    redis: fakeredis.FakeRedis, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    with listener.subscribe("ch-c") as subscription:
        pubsub = subscription._pubsub

        def broken(**_: object) -> None:
            raise redis_lib.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(pubsub, "get_message", broken)
        assert subscription.wait(5.0)  # woken at once: read again
        assert subscription.take_message() is None
        assert not subscription.wait(0.1)  # then polls: its waits sleep out
    assert listener._opened == []  # the broken connection is gone
    with listener.subscribe("ch-c") as again:
        redis.publish("ch-c", "back")
        assert again.wait(1.0)
        assert again.take_message() == b"back"


def test_a_subscription_redis_cannot_confirm_polls_instead(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: object, *channels: object) -> None:
        raise redis_lib.ConnectionError("Connection refused")

    monkeypatch.setattr(redis_lib.client.PubSub, "subscribe", refused)
    with listener.subscribe("ch-d") as subscription:
        started = time.monotonic()
        assert not subscription.wait(0.2)
        assert time.monotonic() - started >= 0.2
    assert listener._opened == []
