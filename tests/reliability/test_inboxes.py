"""A worker takes a message by moving it to its inbox and claiming it: no window to lose it.

kombu's transport popped a message, then recorded it as unacknowledged in a second
write; a worker killed between the two lost it (the mid-chunk SIGKILL test once saw a
chunk vanish that way). These tests pin down each step of the replacement against a real
Redis server: the claim's record is kombu's own, an abandoned inbox comes back, a live
one is left alone, and a sweep racing a claim delivers the message once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.waiting import wait_until
from worker.contracts import QUEUE, Operation, RequestState
from worker.delivery.inbox import REGISTRY, Inbox, claim, return_items
from worker.delivery.transport import Transport
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration

VISIBILITY = 1
OPTIONS = {"priority_steps": [0], "visibility_timeout": VISIBILITY, "unacked_restore_throttle": 1}


@pytest.fixture
def broker(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def connection(broker: Stack) -> Iterator[Connection]:
    with Connection(broker.broker.url, transport=Transport, transport_options=OPTIONS) as conn:
        yield conn


def publish(connection: Connection, name: str, body: Any) -> Queue:
    queue = Queue(name, routing_key=name)
    connection.Producer().publish(body, routing_key=name, declare=[queue], serializer="json")
    return queue


def consume(
    connection: Connection, queue: Queue, *, expect: int = 0, timeout: float = 3.0
) -> list[Message]:
    """What ``queue`` delivers: ``expect`` messages, or all until it is quiet for ``timeout``."""
    taken: list[Message] = []
    with Consumer(connection, [queue], callbacks=[lambda _body, message: taken.append(message)]):
        while not expect or len(taken) < expect:
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                break
    return taken


def restore(connection: Connection) -> None:
    """kombu's periodic restore, which a worker's event loop runs on a timer."""
    connection.default_channel.qos.restore_visible(num=10, interval=1)


def dead_inbox(client: redis.Redis, queue: str) -> Inbox:
    """An inbox registered by a consumer last heard from two visibility timeouts ago."""
    inbox = Inbox(queue, source=queue, abandoned_after=VISIBILITY, consumer="gone.1.dead")
    inbox.heartbeat(client)
    client.zincrby(REGISTRY, -2 * VISIBILITY, inbox.key)
    return inbox


def test_a_taken_message_is_recorded_as_kombu_records_it_and_acks_clear_it(
    broker: Stack, connection: Connection
) -> None:
    client = broker.broker.client()
    queue = publish(connection, "taken", {"n": 1})
    (message,) = consume(connection, queue, expect=1)
    record = json.loads(client.hget("unacked", message.delivery_tag) or b"null")
    assert record == [message._raw, "", "taken"]  # [payload, exchange, routing key]
    assert client.zscore("unacked_index", message.delivery_tag) is not None
    assert message.delivery_tag in message.channel.qos._delivered
    assert not message.channel.claimed  # handed to kombu's QoS
    message.ack()
    assert client.hlen("unacked") == 0
    assert client.zcard("unacked_index") == 0
    assert [key for key in client.keys("_eksops.inbox.*")] == []  # the inbox is empty


def test_a_message_claimed_and_never_acked_comes_back_once_after_the_visibility_timeout(
    broker: Stack, connection: Connection
) -> None:
    queue = publish(connection, "forsaken", {"n": 2})
    (first,) = consume(connection, queue, expect=1)
    first.channel.qos._delivered.clear()  # as if the worker died with it
    time.sleep(VISIBILITY + 0.2)
    restore(connection)
    (again,) = consume(connection, queue, expect=1)
    assert again.payload == {"n": 2}
    assert again.delivery_info["redelivered"] is True
    assert again.delivery_tag == first.delivery_tag


def test_a_message_left_in_a_dead_consumers_inbox_returns_to_the_queue(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    queue = publish(connection, "abandoned", {"n": 3})
    inbox = dead_inbox(client, "abandoned")
    # What a worker killed right after its move leaves: the message in its inbox only.
    assert client.lmove("abandoned", inbox.key, "RIGHT", "LEFT") is not None
    with caplog.at_level(logging.WARNING, logger="worker.delivery.inbox"):
        restore(connection)
    (message,) = consume(connection, queue, expect=1)
    assert message.payload == {"n": 3}
    assert message.delivery_info["redelivered"] is True
    assert client.llen(inbox.key) == 0
    assert f"Returned 1 message(s) from an abandoned inbox {inbox.key}" in caplog.text


def test_a_live_consumers_inbox_is_left_alone(broker: Stack, connection: Connection) -> None:
    client = broker.broker.client()
    queue = publish(connection, "alive", {"n": 4})
    inbox = Inbox("alive", source="alive", abandoned_after=VISIBILITY, consumer="here.1.alive")
    inbox.heartbeat(client)
    client.lmove("alive", inbox.key, "RIGHT", "LEFT")
    restore(connection)
    assert consume(connection, queue, timeout=0.5) == []
    assert client.llen(inbox.key) == 1  # its consumer is about to claim it


def test_a_sweep_racing_a_claim_lets_the_message_out_once(broker: Stack) -> None:
    client = broker.broker.client()
    client.lpush("raced", b"payload")
    inbox = Inbox("raced", source="raced", abandoned_after=VISIBILITY, consumer="slow.1.raced")
    client.lmove("raced", inbox.key, "RIGHT", "LEFT")

    def restore(item: bytes, pipe: Any) -> None:
        pipe.rpush("raced", item)

    assert return_items(client, inbox.key, restore) == 1  # the sweep wins...
    assert inbox.claim(client, unacked_index="unacked_index", unacked="unacked") is None
    assert client.lrange("raced", 0, -1) == [b"payload"]  # ...and the claim takes nothing
    assert client.hlen("unacked") == 0


def test_an_empty_inbox_silent_for_long_leaves_the_registry(
    broker: Stack, connection: Connection
) -> None:
    client = broker.broker.client()
    inbox = dead_inbox(client, "forgotten")
    client.zincrby(REGISTRY, -20 * VISIBILITY, inbox.key)
    quiet = dead_inbox(client, "quiet")  # silent, not yet for long
    restore(connection)
    assert client.zscore(REGISTRY, inbox.key) is None
    assert client.zscore(REGISTRY, quiet.key) is not None


def test_items_that_are_not_messages_are_dropped_and_never_left_recorded(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    queue = publish(connection, "junk", {"n": 5})
    envelope = {**json.loads(client.rpop("junk") or b"{}"), "extra": "X"}
    # JSON to the claim, which records it; not to Python (a raw tab in a string).
    unreadable = json.dumps(envelope).encode().replace(b'"X"', b'"a\tb"')
    too_deep = b'{"body": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for item in (b"not json", b'{"no": "envelope"}', unreadable, too_deep):
        client.lpush("junk", item)
    with caplog.at_level(logging.ERROR, logger="worker.delivery.transport"):
        assert consume(connection, queue, timeout=1) == []
    assert caplog.text.count("Dropped an item of the task queue that is not a message") == 4
    assert client.llen("junk") == 0
    assert client.hlen("unacked") == 0
    assert client.zcard("unacked_index") == 0


def test_a_claim_records_only_what_has_the_shape_of_a_message(broker: Stack) -> None:
    client = broker.broker.client()
    shapes = [
        b"[1, 2]",
        b'{"body": "x", "properties": []}',
        b'{"body": "x", "properties": {"delivery_tag": 7, "delivery_info": {}}}',
        b'{"body": "x", "properties": {"delivery_tag": "t", "delivery_info": {"exchange": ""}}}',
    ]
    for shape in shapes:
        client.lpush("shapes", shape)
        claimed = claim(client, "shapes", unacked_index="unacked_index", unacked="unacked")
        assert claimed is not None
        assert (claimed.item, claimed.tag) == (shape, None)
    assert client.hlen("unacked") == 0
    assert claim(client, "shapes", unacked_index="unacked_index", unacked="unacked") is None


def test_a_channel_on_several_queues_falls_back_to_kombus_pop_and_says_so(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    first = publish(connection, "one", {"n": 6})
    second = publish(connection, "two", {"n": 7})
    taken: list[Message] = []
    with (
        caplog.at_level(logging.WARNING, logger="worker.delivery.transport"),
        Consumer(connection, [first, second], callbacks=[lambda _b, m: taken.append(m)]),
    ):
        for _ in range(2):
            connection.drain_events(timeout=3)
    assert sorted(message.payload["n"] for message in taken) == [6, 7]
    assert broker.broker.client().keys("_eksops.inbox.*") == []
    assert caplog.text.count("Consuming ['one', 'two'] without an inbox") == 1


@pytest.mark.timeout(120)
def test_a_worker_killed_between_move_and_claim_loses_nothing(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    env = {"VISIBILITY_TIMEOUT_SECONDS": "4"}
    eksops = stack.client()
    client = stack.broker.client()
    first = stack.worker(**env)
    registered = wait_until(lambda: client.zrange(REGISTRY, 0, -1))
    (inbox,) = (member.decode() for member in registered)
    first.kill()
    request_id = eksops.create_job(manifest(), namespace).request_id
    # The instant the first worker died in: the message moved to its inbox, not claimed.
    assert client.lmove(QUEUE, inbox, "RIGHT", "LEFT") is not None
    second = stack.worker(**env)
    status = final(eksops, request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED, status
    assert len(jobs_by_request(kube, namespace)[request_id]) == 1
    assert "from an abandoned inbox" in second.log()
    assert client.llen(inbox) == 0
    assert Operation.CREATE_JOB.task_name in second.log()


def test_a_message_kombu_cannot_read_is_dropped_not_left_to_stop_worker_after_worker(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    queue = publish(connection, "unreadable", {"n": 8})
    envelope = json.loads(client.rpop("unreadable") or b"{}")
    client.lpush("unreadable", json.dumps({**envelope, "body": "abc"}))  # not base64
    with caplog.at_level(logging.ERROR, logger="worker.delivery.transport"):
        assert consume(connection, queue, timeout=1) == []  # and nothing raised
    assert "kombu cannot read it" in caplog.text
    assert client.hlen("unacked") == 0  # so it never comes back
    assert client.llen("unreadable") == 0


def test_a_broker_out_of_memory_still_hands_out_messages(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    queue = publish(connection, "full", {"n": 9})
    client.config_set("maxmemory", 1)  # every write refused; BLMOVE is a write, BRPOP is not
    try:
        with caplog.at_level(logging.WARNING, logger="worker.delivery.transport"):
            taken = consume(connection, queue, expect=1)
    finally:
        client.config_set("maxmemory", 0)
    assert [message.payload for message in taken] == [{"n": 9}]
    assert "Redis refused the inbox" in caplog.text


def test_a_control_reply_queue_keeps_kombus_pop_without_an_inbox_or_a_warning(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Replies to broadcasts (ping, mingle) carry no work; after a broker restart an
    # inbox for them spun returning the same reply. They are never given one.
    reply = publish(connection, "worker1.reply.celery.pidbox", {"n": 10})
    with caplog.at_level(logging.WARNING, logger="worker.delivery.transport"):
        (message,) = consume(connection, reply, expect=1)
        message.ack()
        restore(connection)
    assert message.payload == {"n": 10}
    assert broker.broker.client().keys("_eksops.inbox.*") == []
    assert "without an inbox" not in caplog.text
    assert "Returned" not in caplog.text
