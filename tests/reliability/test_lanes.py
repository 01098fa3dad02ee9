"""Workers take messages from the lanes in one step: no window to lose one, whatever the lane.

kombu's transport popped a message, then recorded it as unacknowledged in a second
write; a worker killed between the two lost it. The lanes' take pops and records in
one script, picks interactive work first, shares the bulk lane fairly between
batches, keeps each worker's bulk work within its share of threads, and puts a
message that comes back into its own lane. These tests pin each of those down against
a real Redis server, through kombu's own consumer on eksops's transport.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from producer import EksOps
from producer.enqueue import INTERACTIVE, Enqueuer, Lane, Outgoing
from producer.queue import make_app
from producer.settings import ProducerSettings
from tests.reliability.conftest import Stack, final, jobs_by_request, manifest
from tests.support.monitor import connection_of, monitored
from worker.contracts import QUEUE, Operation, RequestState
from worker.delivery import lanes
from worker.delivery.inbox import REGISTRY, return_items
from worker.delivery.transport import Transport
from worker.names import new_request_id
from worker.operations import ClusterClient
from worker.settings import QueueSettings
from worker.timestamps import now_iso

pytestmark = pytest.mark.integration

VISIBILITY = 1
OPTIONS = {
    "priority_steps": [0],
    "visibility_timeout": VISIBILITY,
    "unacked_restore_throttle": 1,
    "interactive_share": 0.5,
}
TASK = Operation.CREATE_NAMESPACE.task_name


@pytest.fixture
def broker(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def connection(broker: Stack) -> Iterator[Connection]:
    with Connection(broker.broker.url, transport=Transport, transport_options=OPTIONS) as conn:
        yield conn


@pytest.fixture
def enqueuer(broker: Stack) -> Enqueuer:
    app = make_app(QueueSettings(redis_url=broker.broker.url))
    return Enqueuer(app, broker.broker.client(), record_ttl_seconds=600)


def submit(enqueuer: Enqueuer, count: int, lane: Lane = INTERACTIVE, tag: str = "") -> list[str]:
    """Enqueue ``count`` create-namespace requests in ``lane``, one per message."""
    ids = [new_request_id() for _ in range(count)]
    items = [Outgoing(rid, TASK, {"namespace_name": f"ns-{tag}{i}"}) for i, rid in enumerate(ids)]
    for item in items:  # one call per request: one message each, whatever the count
        enqueuer.enqueue([item], submitted_at=now_iso(), lane=lane)
    return ids


def consume(
    connection: Connection, *, expect: int = 0, timeout: float = 3.0, prefetch: int = 0
) -> list[Message]:
    """What the task queue delivers: ``expect`` messages, or all until quiet for ``timeout``."""
    taken: list[Message] = []
    queue = Queue(QUEUE, routing_key=QUEUE)
    with Consumer(
        connection, [queue], callbacks=[lambda _body, message: taken.append(message)]
    ) as consumer:
        if prefetch:
            consumer.qos(prefetch_count=prefetch)
        while not expect or len(taken) < expect:
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                break
    return taken


def request_id(message: Message) -> str:
    return str(message.headers["id"])


def restore(connection: Connection) -> None:
    """kombu's periodic restore, which a worker's event loop runs on a timer."""
    connection.default_channel.qos.restore_visible(num=10, interval=1)


def test_a_taken_message_is_recorded_as_kombu_records_it_and_acks_clear_it(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    client = broker.broker.client()
    (rid,) = submit(enqueuer, 1)
    (message,) = consume(connection, expect=1)
    assert request_id(message) == rid
    record = json.loads(client.hget("unacked", message.delivery_tag) or b"null")
    assert record == [message._raw, "", QUEUE]  # [payload, exchange, routing key]
    # Indexed at the time of the take (the server's clock: the take ran behind the wait).
    assert abs((client.zscore("unacked_index", message.delivery_tag) or 0) - time.time()) < 5
    assert message.delivery_tag in message.channel.qos._delivered
    assert not message.channel.claimed  # handed to kombu's QoS
    message.ack()
    assert client.hlen("unacked") == 0
    assert client.zcard("unacked_index") == 0
    assert lanes.waiting(client).total == 0


def test_the_take_rides_behind_the_wait_on_its_connection(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    client = broker.broker.client()
    client.script_load(lanes.TAKE)  # as after a worker's first take
    taken: list[Message] = []
    with monitored(client) as commands:
        consumer = threading.Thread(target=lambda: taken.extend(consume(connection, expect=2)))
        consumer.start()
        time.sleep(0.3)  # the consumer waits on the bells, its take sent behind the wait
        ids = submit(enqueuer, 2)
        consumer.join(10)
    assert sorted(request_id(message) for message in taken) == sorted(ids)
    by = connection_of
    waits = {by(c) for c in commands if c["command"].startswith("BRPOP eksops.bell ")}
    takes = [by(c) for c in commands if c["command"].startswith(f"EVALSHA {lanes.TAKE_SHA}")]
    assert len(takes) >= 2
    assert set(takes) <= waits  # no take of its own connection: no round trip of its own


def test_a_take_sent_to_a_redis_that_forgot_its_scripts_takes_all_the_same(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    client = broker.broker.client()
    first = submit(enqueuer, 1)
    client.script_flush()  # a restarted Redis: no script loaded
    (message,) = consume(connection, expect=1)
    assert request_id(message) in first
    assert client.script_exists(lanes.TAKE_SHA) == [True]  # loaded by the take
    second = submit(enqueuer, 1)
    (again,) = consume(connection, expect=1)
    assert request_id(again) in second


def test_interactive_work_goes_first_and_bulk_is_never_starved(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    bulk = submit(enqueuer, 5, Lane(group="batch-a"), tag="b")
    interactive = submit(enqueuer, 12, tag="i")
    order = [request_id(message) for message in consume(connection, expect=17)]
    assert order[0] in interactive
    # While bulk waits, every fifth take is bulk: interactive first, bulk still moves.
    assert [rid in bulk for rid in order[:10]] == [False] * 4 + [True] + [False] * 4 + [True]
    assert set(order) == set(bulk) | set(interactive)


def test_a_late_batch_is_served_beside_a_large_one_and_priority_buys_turns(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    large = submit(enqueuer, 40, Lane(group="large"), tag="l")
    late = submit(enqueuer, 4, Lane(group="late"), tag="t")
    urgent = submit(enqueuer, 6, Lane(group="urgent", weight=2), tag="u")
    order = [request_id(message) for message in consume(connection, expect=12)]
    names = {**dict.fromkeys(large, "large"), **dict.fromkeys(late, "late")}
    names |= dict.fromkeys(urgent, "urgent")
    served = [names[rid] for rid in order]
    # Round robin over the ring (large, late, urgent), urgent taking two turns in a row.
    assert served == ["large", "late", "urgent", "urgent"] * 3
    assert lanes.waiting(broker.broker.client()).bulk == {"large": 37, "late": 1}


def test_the_bulk_lane_shares_by_tenant_whatever_number_of_batches_each_submits(
    broker: Stack, connection: Connection
) -> None:
    eksops = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=broker.broker.url))
    items = [{"namespace_name": f"ns-{i}"} for i in range(6)]

    def batch(tenant: str, count: int) -> list[str]:
        submitted = eksops.submit_many(Operation.CREATE_NAMESPACE, items[:count], tenant=tenant)
        return [item.request_id for item in submitted.items if item.request_id]

    first, second = batch("team-a", 6), batch("team-a", 6)
    other = batch("team-b", 3)
    owner = {**dict.fromkeys(first, "a1"), **dict.fromkeys(second, "a2")}
    owner |= dict.fromkeys(other, "b")
    served = [owner[request_id(message)] for message in consume(connection, expect=6)]
    # team-b gets every other turn although team-a has two batches; team-a's batches
    # follow one another within its share.
    assert served == ["a1", "b"] * 3
    assert lanes.waiting(broker.broker.client()).bulk == {"tenant.team-a": 9}
    eksops.close()


def test_a_workers_bulk_work_stays_within_its_share_of_threads(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    bulk = submit(enqueuer, 10, Lane(group="burst"), tag="b")
    # Prefetch 4, interactive share 0.5: at most two bulk messages held at once.
    held = consume(connection, prefetch=4, timeout=1.5)
    assert [request_id(message) in bulk for message in held] == [True, True]
    interactive = submit(enqueuer, 1, tag="i")
    (single,) = consume(connection, prefetch=4, expect=1)
    assert request_id(single) in interactive
    held[0].ack()
    (next_bulk,) = consume(connection, prefetch=4, expect=1)
    assert request_id(next_bulk) in bulk


def test_a_message_never_acked_comes_back_once_into_its_own_lane(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    client = broker.broker.client()
    (rid,) = submit(enqueuer, 1, Lane(group="batch-r", weight=3))
    (first,) = consume(connection, expect=1)
    first.channel.qos._delivered.clear()  # as if the worker died with it
    time.sleep(VISIBILITY + 0.2)
    restore(connection)
    assert lanes.waiting(client).bulk == {"batch-r": 1}
    assert client.hget(lanes.WEIGHTS, "batch-r") == b"3"
    (again,) = consume(connection, expect=1)
    assert request_id(again) == rid
    assert again.delivery_info["redelivered"] is True
    assert again.delivery_tag == first.delivery_tag


def test_tokens_are_only_wake_ups_a_message_without_one_is_still_taken(
    broker: Stack, connection: Connection, enqueuer: Enqueuer
) -> None:
    client = broker.broker.client()
    ids = submit(enqueuer, 3, Lane(group="quiet"))
    client.delete(lanes.INTERACTIVE_BELL, lanes.BULK_BELL)  # as if every token were lost
    started = time.monotonic()
    taken = consume(connection, expect=3)
    assert sorted(request_id(message) for message in taken) == sorted(ids)
    assert time.monotonic() - started < 5  # found by the next poll, not lost


def test_items_that_are_not_messages_are_dropped_and_never_left_recorded(
    broker: Stack, connection: Connection, enqueuer: Enqueuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    submit(enqueuer, 1)
    envelope = {**json.loads(client.rpop(QUEUE) or b"{}"), "extra": "X"}
    # JSON to the take, which records it; not to Python (a raw tab in a string).
    unreadable = json.dumps(envelope).encode().replace(b'"X"', b'"a\tb"')
    too_deep = b'{"body": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for item in (b"not json", b'{"no": "envelope"}', unreadable, too_deep):
        client.lpush(QUEUE, item)
    with caplog.at_level(logging.ERROR, logger="worker.delivery.transport"):
        assert consume(connection, timeout=1.5) == []
    assert caplog.text.count("Dropped an item of the task queue that is not a message") == 4
    assert client.llen(QUEUE) == 0
    assert client.hlen("unacked") == 0
    assert client.zcard("unacked_index") == 0


def test_a_take_records_only_what_has_the_shape_of_a_message(broker: Stack) -> None:
    client = broker.broker.client()
    shapes = [
        b"[1, 2]",
        b'{"body": "x", "properties": []}',
        b'{"body": "x", "properties": {"delivery_tag": 7, "delivery_info": {}}}',
        b'{"body": "x", "properties": {"delivery_tag": "t", "delivery_info": {"exchange": ""}}}',
    ]
    for shape in shapes:
        client.lpush(QUEUE, shape)
        taken = lanes.take(client, bulk=True, unacked_index="unacked_index", unacked="unacked")
        assert taken is not None
        assert (taken.item, taken.tag) == (shape, None)
    assert client.hlen("unacked") == 0
    assert lanes.take(client, bulk=True, unacked_index="unacked_index", unacked="unacked") is None


def test_a_channel_on_several_queues_falls_back_to_kombus_pop_and_says_so(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    queues = [Queue(name, routing_key=name) for name in ("one", "two")]
    for index, queue in enumerate(queues):
        connection.Producer().publish(
            {"n": index}, routing_key=queue.name, declare=[queue], serializer="json"
        )
    taken: list[Message] = []
    with (
        caplog.at_level(logging.WARNING, logger="worker.delivery.transport"),
        Consumer(connection, queues, callbacks=[lambda _b, m: taken.append(m)]),
    ):
        for _ in range(2):
            connection.drain_events(timeout=3)
    assert sorted(message.payload["n"] for message in taken) == [0, 1]
    assert caplog.text.count("Consuming ['one', 'two'] without the lanes") == 1


def test_a_message_kombu_cannot_read_is_dropped_not_left_to_stop_worker_after_worker(
    broker: Stack, connection: Connection, enqueuer: Enqueuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    submit(enqueuer, 1)
    envelope = json.loads(client.rpop(QUEUE) or b"{}")
    client.lpush(QUEUE, json.dumps({**envelope, "body": "abc"}))  # not base64
    with caplog.at_level(logging.ERROR, logger="worker.delivery.transport"):
        assert consume(connection, timeout=1.5) == []  # and nothing raised
    assert "kombu cannot read it" in caplog.text
    assert client.hlen("unacked") == 0  # so it never comes back
    assert client.llen(QUEUE) == 0


def test_a_broker_out_of_memory_refuses_the_take_whole_and_still_hands_out_messages(
    broker: Stack, connection: Connection, enqueuer: Enqueuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    (rid,) = submit(enqueuer, 1)
    client.config_set("maxmemory", 1)  # every write refused; kombu's BRPOP is allowed
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            lanes.take(client, bulk=True, unacked_index="unacked_index", unacked="unacked")
        assert client.llen(QUEUE) == 1  # the refused take popped nothing
        with caplog.at_level(logging.WARNING, logger="worker.delivery.transport"):
            taken = consume(connection, expect=1)
    finally:
        client.config_set("maxmemory", 0)
    assert [request_id(message) for message in taken] == [rid]
    assert "Redis refused a take" in caplog.text


def test_a_control_reply_queue_keeps_kombus_pop_without_a_warning(
    broker: Stack, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    reply = Queue("worker1.reply.celery.pidbox", routing_key="worker1.reply.celery.pidbox")
    connection.Producer().publish(
        {"n": 10}, routing_key=reply.name, declare=[reply], serializer="json"
    )
    taken: list[Message] = []
    with (
        caplog.at_level(logging.WARNING, logger="worker.delivery.transport"),
        Consumer(connection, [reply], callbacks=[lambda _b, m: taken.append(m)]),
    ):
        connection.drain_events(timeout=3)
    assert [message.payload for message in taken] == [{"n": 10}]
    assert "without the lanes" not in caplog.text


def _earlier_inbox(client: redis.Redis, name: str, *, silent_for: float) -> str:
    """An inbox as an earlier eksops worker registered it, last heard ``silent_for`` ago."""
    key = f"_eksops.inbox.{name}.{QUEUE}"
    seconds, micros = client.time()
    client.zadd(REGISTRY, {key: float(seconds) + micros / 1e6 - silent_for})
    return key


def test_what_an_earlier_workers_inbox_holds_returns_to_its_lane(
    broker: Stack, connection: Connection, enqueuer: Enqueuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = broker.broker.client()
    (rid,) = submit(enqueuer, 1, Lane(group="batch-u"))
    inbox = _earlier_inbox(client, "gone.1.dead", silent_for=2 * VISIBILITY)
    # What an earlier worker killed right after its move left: the message in its inbox.
    assert client.lmove(lanes.bulk_list("batch-u"), inbox, "RIGHT", "LEFT") is not None
    alive = _earlier_inbox(client, "here.1.alive", silent_for=0)
    client.lpush(alive, b"being claimed")
    forgotten = _earlier_inbox(client, "long.1.gone", silent_for=20 * VISIBILITY)
    with caplog.at_level(logging.WARNING, logger="worker.delivery.inbox"):
        restore(connection)
    (message,) = consume(connection, expect=1)
    assert request_id(message) == rid
    assert message.delivery_info["redelivered"] is True
    assert client.llen(inbox) == 0
    assert f"Returned 1 message(s) from the abandoned inbox {inbox}" in caplog.text
    assert client.llen(alive) == 1  # its worker is about to claim it
    assert client.zscore(REGISTRY, forgotten) is None


def test_a_return_racing_an_earlier_workers_claim_lets_the_message_out_once(
    broker: Stack,
) -> None:
    client = broker.broker.client()
    inbox = _earlier_inbox(client, "slow.1.raced", silent_for=10)
    client.lpush(inbox, b"payload")
    returned: list[bytes] = []

    def restore_item(item: bytes, pipe: Any) -> None:
        if not returned:
            # The earlier worker's claim lands between the read and the write.
            assert broker.broker.client().rpop(inbox) == b"payload"
        returned.append(item)
        pipe.rpush("returned", item)

    assert return_items(client, inbox, restore_item) == 0  # started over: nothing left
    assert client.llen("returned") == 0  # the claim has it; nobody else does


@pytest.mark.timeout(120)
def test_a_worker_killed_holding_a_token_loses_nothing(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    client = stack.broker.client()
    request = eksops.create_job(manifest(), namespace).request_id
    # The instant a worker died in: it had popped the bell's token and not taken yet.
    assert client.rpop(lanes.INTERACTIVE_BELL) is not None
    worker = stack.worker()
    status = final(eksops, request, timeout=60)
    assert status.state is RequestState.SUCCEEDED, status
    assert len(jobs_by_request(kube, namespace)[request]) == 1
    assert Operation.CREATE_JOB.task_name in worker.log()
