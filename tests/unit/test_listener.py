"""A blocking waiter's own subscription: confirmed before it reads, woken in the waiting
thread with what was published, its connection reused by later waiters, a few per
process however many threads come and go; waiters beyond those share the notifier."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis as redis_lib

from producer.notify import Listener, Notifier, OwnSubscription, Subscription


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def notifier(redis: fakeredis.FakeRedis) -> Iterator[Notifier]:
    shared = Notifier(redis)
    yield shared
    shared.close()


@pytest.fixture
def listener(redis: fakeredis.FakeRedis, notifier: Notifier) -> Iterator[Listener]:
    own = Listener(redis, shared=notifier.subscribe, most=3)
    yield own
    own.close()


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
        threading.Timer(0.2, lambda: redis.publish("ch-b", "done")).start()
        started = time.monotonic()
        assert subscription.wait(5.0)
        assert time.monotonic() - started < 1.0
        assert subscription.take_message() == b"done"


def test_the_next_wait_reuses_the_connection_and_skips_what_the_last_one_left(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    with listener.subscribe("ch-old"):
        pass
    redis.publish("ch-old", "late")  # nobody listens: the unsubscribe went first
    with listener.subscribe("ch-new") as second:
        redis.publish("ch-new", "mine")
        assert second.wait(1.0)
        assert second.take_message() == b"mine"
    assert listener.connections == 1
    assert redis.pubsub_numsub("ch-old", "ch-new") == [(b"ch-old", 0), (b"ch-new", 0)]


def test_threads_that_come_and_go_reuse_a_few_connections(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    def wait_once(index: int) -> None:
        with listener.subscribe(f"t{index}") as subscription:
            redis.publish(f"t{index}", "x")
            assert subscription.wait(5.0)

    for round_ in range(5):  # a new thread per wait, as a thread-per-request server has
        threads = [threading.Thread(target=wait_once, args=(round_ * 2 + i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert 1 <= listener.connections <= 2


def test_waiters_beyond_the_cap_share_the_notifier(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    subscriptions = [listener.subscribe(f"c{i}") for i in range(5)]
    try:
        assert [type(s) for s in subscriptions] == [OwnSubscription] * 3 + [Subscription] * 2
        assert listener.connections == 3
        for index in range(len(subscriptions)):
            redis.publish(f"c{index}", f"m{index}")
        for index, subscription in enumerate(subscriptions):
            messages = []
            while subscription.wait(2.0):  # the notifier also wakes on (re)connecting
                messages.append(subscription.take_message())
                if messages[-1] is not None:
                    break
            assert messages[-1:] == [f"m{index}".encode()], index
    finally:
        for subscription in subscriptions:
            subscription.close()
    assert listener.connections == 3  # idle, for the next waiters


def test_a_lost_connection_wakes_the_waiter_to_read_and_the_next_wait_reconnects(
    redis: fakeredis.FakeRedis, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    with listener.subscribe("ch-c") as subscription:
        assert isinstance(subscription, OwnSubscription)
        pubsub = subscription._pubsub

        def broken(**_: object) -> None:
            raise redis_lib.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(pubsub, "get_message", broken)
        assert subscription.wait(5.0)  # woken at once: read again
        assert subscription.take_message() is None
        assert not subscription.wait(0.1)  # then polls: its waits sleep out
    assert listener.connections == 0  # the broken connection is gone
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
    assert listener.connections == 0


def test_a_closed_listener_keeps_no_connection(
    redis: fakeredis.FakeRedis, listener: Listener
) -> None:
    held = listener.subscribe("ch-e")
    with listener.subscribe("ch-f"):
        pass
    listener.close()
    assert listener.connections == 1  # the one still in use
    held.close()
    assert listener.connections == 0
