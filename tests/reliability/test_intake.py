"""An interactive runner's intake: the atomic take, the start behind it, the hand-over.

Against a real Redis server, through eksops's transport: what a runner takes is in
its lane or recorded at every instant, its start rides behind the take (the take's
note names the request, the start reads it in the same round trip), what a runner
must not run goes to Celery's consumer, and a take whose reply was lost comes back.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import redis
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from producer.enqueue import Enqueuer, Outgoing
from producer.queue import make_app
from tests.reliability.conftest import Stack
from tests.support.waiting import wait_until
from worker.catalog import CATALOG
from worker.contracts import QUEUE, Operation
from worker.delivery import lanes, transport
from worker.delivery.intake import Intake
from worker.delivery.transport import Runners, Transport
from worker.names import new_request_id
from worker.operations.limiter import Limits, RedisLimiter, release_early
from worker.queues import UNACKED, UNACKED_INDEX
from worker.records import Starter, lease_key, read_record
from worker.runners import runnable
from worker.settings import QueueSettings
from worker.timestamps import now_iso

pytestmark = pytest.mark.integration

OPTIONS = {"priority_steps": [0], "visibility_timeout": 3600, "interactive_share": 0.25}
TASKS = [spec.task_name for spec in CATALOG.values()]
RESULTS = "celery-task-meta-"


@pytest.fixture(autouse=True)
def runners(monkeypatch: pytest.MonkeyPatch) -> Runners:
    """This process's runners as the consumer sees them, fresh for each test."""
    fresh = Runners()
    monkeypatch.setattr(transport, "RUNNERS", fresh)
    return fresh


@pytest.fixture
def broker(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def client(broker: Stack) -> redis.Redis:
    return broker.broker.client()


@pytest.fixture
def intake(broker: Stack) -> Iterator[Intake]:
    connection = Connection(broker.broker.url, transport=Transport, transport_options=OPTIONS)
    taking = Intake(connection, accept=["json"], runnable=runnable, tasks=TASKS)
    yield taking
    taking.close()


@contextlib.contextmanager
def consuming(broker: Stack) -> Iterator[tuple[Connection, list[Message]]]:
    """A consumer of the task queue as a worker's (Celery's side), and what it receives."""
    received: list[Message] = []
    with (
        Connection(broker.broker.url, transport=Transport, transport_options=OPTIONS) as conn,
        Consumer(
            conn,
            [Queue(QUEUE, routing_key=QUEUE)],
            callbacks=[lambda _body, message: received.append(message)],
        ),
    ):
        yield conn, received


def submit(broker: Stack, operation: Operation, arguments: dict[str, object]) -> str:
    """Enqueue one single request as a producer does; return its ID."""
    app = make_app(QueueSettings(redis_url=broker.broker.url))
    rid = new_request_id()
    enqueuer = Enqueuer(app, broker.broker.client(), record_ttl_seconds=600)
    enqueuer.enqueue([Outgoing(rid, operation.task_name, arguments)], submitted_at=now_iso())
    return rid


def test_a_single_is_taken_recorded_and_acknowledged_like_a_consumers_take(
    broker: Stack, client: redis.Redis, intake: Intake
) -> None:
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "taken"})
    took = intake.take(1)
    assert took.delivery is not None
    assert (took.delivery.request_id, took.tag) == (rid, rid)
    assert took.delivery.kwargs == {"namespace_name": "taken"}
    assert took.delivery.task_name == Operation.CREATE_NAMESPACE.task_name
    # Recorded as kombu records it, and in the intake's own set (not the process's).
    payload, _exchange, routing = json.loads(client.hget(UNACKED, rid) or b"null")
    assert (payload["headers"]["id"], routing) == (rid, QUEUE)
    assert client.sismember(intake.taker, rid)
    assert client.llen(QUEUE) == 0
    intake.ack(took.delivery)
    assert (client.hlen(UNACKED), client.zcard(UNACKED_INDEX), client.scard(intake.taker)) == (
        0,
        0,
        0,
    )


def test_the_start_behind_the_take_starts_the_request_the_take_notes(
    broker: Stack, client: redis.Redis, intake: Intake
) -> None:
    starter = Starter(client, lease_ms=30_000, ttl_seconds=600)

    def behind(note: lanes.Note) -> list[tuple[object, ...]]:
        return [starter.after_take(note.key, note.nonce, "holder-1", RESULTS)]

    # A Redis that does not know the start yet: nothing to start, and it is loaded.
    assert starter.taken_start(intake.take(1, behind).behind[0]) is None
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "started"})
    before = time.time()
    took = intake.take(1, behind)
    assert took.delivery is not None
    assert took.delivery.request_id == rid
    start = starter.taken_start(took.behind[0])
    assert start is not None
    assert (start.leased, start.attempt, start.stored) == (True, 1, None)
    assert client.get(lease_key(rid)) == b"holder-1"
    record = read_record(client, rid)
    assert record is not None
    assert record.operation == Operation.CREATE_NAMESPACE.task_name
    assert record.attempts == 1
    # Started at the server's clock, written as the worker writes times.
    assert record.started_at is not None
    started = datetime.fromisoformat(record.started_at)
    assert started.tzinfo is not None
    assert started.utcoffset() == timedelta(0)
    assert before - 1 <= started.timestamp() <= time.time() + 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", record.started_at)


def test_a_start_behind_a_take_that_took_nothing_starts_nothing(
    broker: Stack, client: redis.Redis, intake: Intake
) -> None:
    starter = Starter(client, lease_ms=30_000, ttl_seconds=600)
    client.script_load(lanes.TAKE)
    for _ in range(2):  # the first loads the start script
        took = intake.take(1, lambda note: [starter.after_take(note.key, note.nonce, "h", RESULTS)])
        assert took.delivery is None
        assert starter.taken_start(took.behind[0]) is None
    # A note left by an earlier take (its nonce) is not this take's.
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "stale"})
    took = intake.take(1)
    assert took.delivery is not None
    assert took.delivery.request_id == rid
    (note_key,) = [k.decode() for k in client.keys(f"{intake.taker}:note")]
    (reply,) = (
        client.pipeline()
        .execute_command(*starter.after_take(note_key, "another-nonce", "h", RESULTS))
        .execute()
    )
    assert reply is None
    assert client.get(lease_key(rid)) is None


def test_the_limiters_ask_behind_a_take_asks_only_when_the_take_noted_a_request(
    client: redis.Redis,
) -> None:
    limiter = RedisLimiter(
        client, "c", Limits(rate_per_second=0, burst=0, max_in_flight=1, lease_seconds=30)
    )
    with limiter.slot():  # an ordinary call: the limiter's script is loaded
        pass
    calls: list[tuple[object, ...]] = []

    class Collect:
        def execute_command(self, *args: object) -> None:
            calls.append(args)

    try:
        read = limiter.ask_early(Collect(), only_if="no-such-note")
        assert read is not None
        read(client.execute_command(*calls.pop()))
        assert client.zcard("eksops:limit:c:inflight") == 0  # nothing asked, nothing held
        client.set("a-note", "1")
        read = limiter.ask_early(Collect(), only_if="a-note")
        assert read is not None
        read(client.execute_command(*calls.pop()))
        assert client.zcard("eksops:limit:c:inflight") == 1  # granted: held for the call
    finally:
        release_early()
    wait_until(lambda: client.zcard("eksops:limit:c:inflight") == 0, timeout=5)


def test_what_a_runner_must_not_run_goes_to_the_consumer_which_runs_it(
    broker: Stack, client: redis.Redis, intake: Intake, runners: Runners
) -> None:
    app = make_app(QueueSettings(redis_url=broker.broker.url))
    rid = new_request_id()
    task = Operation.CREATE_NAMESPACE.task_name
    app.send_task(task, kwargs={"namespace_name": "later"}, task_id=rid, countdown=30)
    took = intake.take(1)
    assert took.delivery is None
    assert took.refused is not None
    assert took.tag is not None  # kombu's own tag: a message kombu published
    assert client.sismember(intake.taker, took.tag)  # the runner's, until it hands it over
    intake.hand_over(took.refused)  # once the runner gave back what it started
    assert [t.tag for t in runners.handed] == [took.tag]
    assert client.hexists(UNACKED, took.tag)  # still recorded: handed, not lost
    assert not client.sismember(intake.taker, took.tag)  # not the intake's to return
    # The consumer's channel delivers it at its next turn, as if it had taken it.
    with consuming(broker) as (conn, received):
        conn.drain_events(timeout=5)
        assert [m.headers["id"] for m in received] == [rid]
        assert received[0].headers["eta"] is not None
        received[0].ack()
    assert client.hlen(UNACKED) == 0


def test_an_item_that_is_not_a_message_is_dropped_and_left_recorded_nowhere(
    client: redis.Redis, intake: Intake
) -> None:
    client.lpush(QUEUE, b"not json", json.dumps({"neither": "an envelope"}))
    assert intake.take(1).delivery is None
    assert intake.take(1).delivery is None
    assert (client.llen(QUEUE), client.hlen(UNACKED), client.scard(intake.taker)) == (0, 0, 0)


def test_a_take_whose_reply_was_lost_is_returned_after_the_connection_error(
    broker: Stack, client: redis.Redis, intake: Intake
) -> None:
    assert intake.take(1).delivery is None  # connected, nothing to take
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "lost"})
    # Redis ran this intake's take and its reply never came (Redis stopped right then).
    lost = lanes.take(
        client,
        bulk=False,
        unacked_index=UNACKED_INDEX,
        unacked=UNACKED,
        taker=intake.taker,
        taker_ttl=60,
    )
    assert lost is not None
    assert lost.tag == rid
    client.delete(lanes.INTERACTIVE_BELL)  # its wake-up was spent on the lost take
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            intake.take(5)
        except redis.ConnectionError as exc:
            failed.append(exc)

    waiting = threading.Thread(target=wait)
    waiting.start()
    time.sleep(0.5)  # waiting on the bell; then the connection is lost
    client.client_kill_filter(_type="normal", skipme=True)
    waiting.join(10)
    assert len(failed) == 1
    # What was sent behind the lost take is undone first, before its message goes back.
    undone: list[tuple[str, int]] = []
    took = intake.take(1, unanswered=lambda tag: undone.append((tag, client.llen(QUEUE))))
    assert undone == [(rid, 0)]
    assert took.delivery is not None
    assert took.delivery.request_id == rid
    assert client.hlen(UNACKED) == 1  # taken again, once
    intake.ack(took.delivery)
    assert (client.hlen(UNACKED), client.scard(intake.taker)) == (0, 0)


def test_while_a_runner_is_free_the_consumer_leaves_single_requests_to_it(
    broker: Stack, client: redis.Redis, runners: Runners
) -> None:
    runners.free_one(lambda: client)
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "for-runners"})
    with consuming(broker) as (conn, received):
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=1.5)
        assert received == []
        assert client.llen(QUEUE) == 1  # left in its lane for the runners
        # The last free runner starts a request: the consumer takes single work again.
        runners.busy(lambda: client)
        conn.drain_events(timeout=5)
        assert [m.headers["id"] for m in received] == [rid]
        received[0].ack()


def test_a_message_taken_as_the_worker_stops_goes_back_to_its_lane_unrun(
    broker: Stack, client: redis.Redis, intake: Intake
) -> None:
    rid = submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "not-now"})
    took = intake.take(1)
    assert took.delivery is not None
    intake.put_back(took.delivery.tag)
    assert (client.hlen(UNACKED), client.scard(intake.taker)) == (0, 0)
    again = intake.take(1)
    assert again.delivery is not None
    assert again.delivery.request_id == rid
    intake.ack(again.delivery)


def test_a_take_that_may_take_from_neither_lane_takes_nothing(
    broker: Stack, client: redis.Redis
) -> None:
    # The consumer whose bulk share is full while a runner is free: it waits on its own
    # bell only, and the take behind the wait leaves the single request to the runner.
    submit(broker, Operation.CREATE_NAMESPACE, {"namespace_name": "for-a-runner"})
    keys = {"unacked_index": UNACKED_INDEX, "unacked": UNACKED}
    assert lanes.take(client, bulk=False, interactive=False, **keys) is None
    assert client.llen(QUEUE) == 1
    assert lanes.take(client, bulk=False, **keys) is not None


def test_a_bell_that_cannot_be_rung_never_fails_the_runner(runners: Runners) -> None:
    class Down:
        def pipeline(self, **_: object) -> object:
            raise redis.ConnectionError("Redis is down")

    runners.bell = lanes.worker_bell("consumer")
    runners.watching = False
    runners.free_one(Down)
    runners.busy(Down)  # the last free runner: rings, and the ring fails quietly
    runners.watching = True
    runners.free_one(Down)
    assert runners.free == 1
