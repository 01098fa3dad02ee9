"""Enqueued messages are exactly what Celery would publish, and each ID goes once."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
from celery import Celery

from producer.enqueue import Enqueuer, Outgoing, build_message
from worker.catalog import summarise as describe
from worker.contracts import QUEUE, Operation
from worker.delivery import lanes
from worker.delivery.config import celery_settings
from worker.delivery.envelope import ENQUEUED_AT, chunk_envelope
from worker.errors import EnqueueInterrupted
from worker.records import read_record
from worker.settings import QueueSettings


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def app() -> Celery:
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_settings(QueueSettings(redis_url="redis://fake:6379/0")))
    return app


def test_the_envelope_matches_what_celery_and_kombu_publish(app: Celery) -> None:
    # kombu's in-memory transport shares the Redis transport's envelope (both are
    # virtual transports); the Redis one only JSON-encodes it onto a list.
    app.conf.result_backend = "cache+memory://"  # send_task must not subscribe to Redis
    task_id = str(uuid.uuid4())
    kwargs = {"namespace_name": "team-a"}
    with app.connection_for_write("memory://") as connection:
        app.send_task(
            "eksops.create_namespace", kwargs=kwargs, task_id=task_id, connection=connection
        )
        published = connection.default_channel._get(QUEUE)
    ours = json.loads(
        build_message(
            app, Outgoing(task_id, "eksops.create_namespace", kwargs, summary="namespace=team-a")
        )
    )

    assert set(ours) == set(published)
    # Beside kombu's properties, when the message was enqueued (the backlog's age).
    assert set(ours["properties"]) == {*published["properties"], ENQUEUED_AT}
    assert ours["properties"]["delivery_info"] == published["properties"]["delivery_info"]
    for key in ("correlation_id", "delivery_mode", "priority", "body_encoding"):
        assert ours["properties"][key] == published["properties"][key]
    assert ours["content-type"] == published["content-type"] == "application/json"
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(published["body"])
    )
    assert ours["headers"]["kwargsrepr"] == "namespace=team-a"
    differing = {"origin", "ignore_result", "argsrepr", "kwargsrepr"}
    assert {k: v for k, v in ours["headers"].items() if k not in differing} == {
        k: v for k, v in published["headers"].items() if k not in differing
    }


def test_a_requests_message_asks_celery_to_store_no_result_a_chunks_does(app: Celery) -> None:
    # The engine stores a request's outcome; a stored result of the task itself would
    # cost a read of that outcome after every request (Celery's overwrite guard).
    single = json.loads(
        build_message(app, Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {}))
    )
    assert single["headers"]["ignore_result"] is True
    chunk = json.loads(
        chunk_envelope(app, str(uuid.uuid4()), Operation.CREATE_NAMESPACE, [("r", {})])
    )
    assert chunk["headers"]["ignore_result"] is False  # its tally is its own result
    other = json.loads(build_message(app, Outgoing(str(uuid.uuid4()), "other.task", {})))
    assert other["headers"]["ignore_result"] is False  # any other task: Celery's default


@pytest.mark.parametrize(
    ("arguments", "summary"),
    [
        ({"job_manifest": {"metadata": {"name": "pi"}}, "namespace": "a"}, "job=pi namespace=a"),
        ({"job_name": "pi", "namespace": "a"}, "job=pi namespace=a"),
        ({"namespace_name": "team-a"}, "namespace=team-a"),
        ({"job_manifest": {"metadata": {"generateName": "pi-"}}}, ""),
        # Unvalidated arguments still get a summary: the worker names the problem.
        ({"job_manifest": "not a manifest"}, ""),
        ({"job_manifest": {"metadata": ["not", "a", "mapping"]}}, ""),
        ({"job_manifest": None}, ""),
    ],
)
def test_the_summary_names_the_request_and_never_fails(
    arguments: dict[str, object], summary: str, app: Celery
) -> None:
    assert describe(arguments) == summary
    message = json.loads(
        build_message(app, Outgoing(str(uuid.uuid4()), "eksops.create_job", arguments))
    )
    assert message["headers"]["kwargsrepr"] == (summary or "{...}")


def test_a_request_id_is_enqueued_once_however_often_it_is_submitted(
    app: Celery, redis: fakeredis.FakeRedis
) -> None:
    enqueuer = Enqueuer(app, redis, record_ttl_seconds=60)
    item = Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": "a"})
    assert enqueuer.enqueue([item], submitted_at="t0") == [True]
    assert enqueuer.enqueue([item], submitted_at="t1") == [False]
    assert lanes.waiting(redis).total == 1
    record = read_record(redis, item.request_id)
    assert record is not None
    assert record.submitted_at == "t0"
    assert record.operation == "eksops.create_namespace"
    assert 0 < redis.ttl(f"eksops:request:{item.request_id}") <= 60


def test_a_single_enqueue_after_the_scripts_were_flushed_loads_it_and_goes_in_once(
    app: Celery, redis: fakeredis.FakeRedis
) -> None:
    enqueuer = Enqueuer(app, redis, record_ttl_seconds=60)
    first = Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": "a"})
    assert enqueuer.enqueue([first], submitted_at="t0") == [True]  # loads the script
    assert enqueuer._loaded  # the next single part goes by digest alone
    redis.script_flush()  # a restarted Redis: the enqueuer still thinks it is loaded
    second = Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": "b"})
    assert enqueuer.enqueue([second], submitted_at="t1") == [True]
    assert enqueuer.enqueue([second], submitted_at="t2") == [False]  # by digest again
    assert lanes.waiting(redis).total == 2


def test_a_bulk_enqueue_spans_chunks_and_reports_duplicates_per_item(
    app: Celery, redis: fakeredis.FakeRedis
) -> None:
    enqueuer = Enqueuer(app, redis, record_ttl_seconds=60)
    items = [
        Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": f"n{i}"})
        for i in range(25)
    ]
    first = enqueuer.enqueue_parts([items[:4], items[4:10]], submitted_at="t0", batch_id="batch-1")
    assert first == [True] * 10
    in_sevens = [items[i : i + 7] for i in range(0, 25, 7)]
    accepted = enqueuer.enqueue_parts(in_sevens, submitted_at="t1", batch_id="batch-1")
    assert accepted == [False] * 10 + [True] * 15
    assert lanes.waiting(redis).total == 25
    last = read_record(redis, items[-1].request_id)
    assert last is not None
    assert last.batch_id == "batch-1"
    # Each request appears once in its batch, in submission order.
    assert [rid.decode() for rid in redis.lrange("eksops:batch:batch-1:items", 0, -1)] == [
        item.request_id for item in items
    ]


def test_nothing_is_written_for_an_empty_batch(app: Celery, redis: fakeredis.FakeRedis) -> None:
    assert Enqueuer(app, redis, record_ttl_seconds=60).enqueue([], submitted_at="t") == []
    assert redis.dbsize() == 0


def test_an_interrupted_enqueue_says_how_many_items_went_in(app: Celery) -> None:
    server = fakeredis.FakeServer()
    enqueuer = Enqueuer(app, fakeredis.FakeRedis(server=server), record_ttl_seconds=60)
    items = [
        Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": f"n{i}"})
        for i in range(6)
    ]

    def chunks() -> Iterator[list[Outgoing]]:
        yield items[:3]
        server.connected = False
        yield items[3:]

    with pytest.raises(EnqueueInterrupted) as caught:
        enqueuer.enqueue_parts(chunks(), submitted_at="t0")
    # Pipelined: nothing is confirmed when the connection breaks before the replies.
    assert caught.value.accepted == [None] * 3
    assert caught.value.enqueued == 0


def test_an_item_whose_record_key_is_taken_fails_alone(
    app: Celery, redis: fakeredis.FakeRedis
) -> None:
    enqueuer = Enqueuer(app, redis, record_ttl_seconds=60)
    items = [
        Outgoing(str(uuid.uuid4()), "eksops.create_namespace", {"namespace_name": f"n{i}"})
        for i in range(3)
    ]
    redis.set(f"eksops:request:{items[1].request_id}", "not a hash")
    with pytest.raises(EnqueueInterrupted) as caught:
        enqueuer.enqueue(items, submitted_at="t0")
    assert caught.value.accepted == [True, None, True]
    assert lanes.waiting(redis).total == 2
