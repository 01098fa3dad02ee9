"""An outcome stored by eksops reads as Celery's own store leaves it, whichever way it is written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import fakeredis
import pytest
from celery import Celery, states

from worker import callbacks, errors, events
from worker.delivery.results import set_result_meta as store_outcome
from worker.executions import Execution, Executions
from worker.leases import LeaseKeeper
from worker.records import Starter, record_key


@pytest.fixture
def backend() -> Any:
    app = Celery("t", set_as_current=False)
    app.conf.update(
        result_backend="redis://fake", result_serializer="json", result_accept_content=["json"]
    )
    backend = app.backend
    backend.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return backend


def comparable(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key not in {"task_id", "date_done"}}


def test_a_success_reads_back_as_celery_stores_it(backend: Any) -> None:
    ours, celerys = str(uuid.uuid4()), str(uuid.uuid4())
    result = {"job_name": "nightly", "status": "created"}
    store_outcome(backend, ours, result, states.SUCCESS)
    backend.store_result(celerys, result, states.SUCCESS)
    assert comparable(backend.get_task_meta(ours)) == comparable(backend.get_task_meta(celerys))
    assert backend.get_task_meta(ours)["task_id"] == ours


def test_a_failure_reads_back_as_the_same_error(backend: Any) -> None:
    ours, celerys = str(uuid.uuid4()), str(uuid.uuid4())
    error = errors.Conflict('jobs.batch "nightly" already exists', 409, "AlreadyExists")
    store_outcome(backend, ours, error, states.FAILURE)
    backend.mark_as_failure(celerys, error)
    mine, theirs = backend.get_task_meta(ours), backend.get_task_meta(celerys)
    assert mine["status"] == theirs["status"] == states.FAILURE
    assert mine["result"].to_info() == theirs["result"].to_info() == error.to_info()


# --- the store of an execution: one script with results in the broker's Redis -------


def executions(backend: Any, *, shared: bool) -> Executions:
    redis = backend.client
    leases = LeaseKeeper(redis, ttl_seconds=30)
    return Executions(
        starter=Starter(redis, lease_ms=leases.ttl_ms, ttl_seconds=600),
        leases=leases,
        redis=redis,
        backend=lambda: backend,
        shared_redis=shared,
    )


def stored(
    backend: Any, outcome: Any, state: str, *, shared: bool, **execution: Any
) -> dict[str, Any]:
    """Store ``outcome`` of a new request; return everything a reader can see of it."""
    redis = backend.client
    request_id = str(uuid.uuid4())
    pubsub = redis.pubsub()
    pubsub.subscribe(backend.get_key_for_task(request_id), events.request_channel(request_id))
    pubsub.get_message(timeout=1)
    pubsub.get_message(timeout=1)
    links = {"job": "eksops:job:c:ns:nightly"}
    executions(backend, shared=shared).store(
        Execution(request_id, holder="h", **execution), outcome, state, links=links
    )
    published: list[tuple[str, Any]] = []
    while (message := pubsub.get_message(timeout=0.1)) is not None:
        channel, data = message["channel"].decode().replace(request_id, "ID"), message["data"]
        published.append((channel, comparable(json.loads(data)) if "meta" in channel else data))
    (entry,) = [
        fields
        for _id, fields in redis.xrange(events.STREAM_KEY)
        if fields[b"request_id"] == request_id.encode()
    ]
    return {
        "meta": comparable(json.loads(redis.get(backend.get_key_for_task(request_id)))),
        "ttl": redis.ttl(backend.get_key_for_task(request_id)),
        "record": redis.hgetall(record_key(request_id)),
        "event": {**{k: v for k, v in entry.items() if k != b"at"}, b"request_id": b"ID"},
        "published": published,
    }


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        ({"job_name": "nightly", "namespace": "ns"}, states.SUCCESS),
        (errors.NotFound('jobs.batch "nightly" not found', 404, "NotFound"), states.FAILURE),
    ],
    ids=["success", "failure"],
)
def test_the_one_step_store_writes_what_the_pipeline_writes(
    backend: Any, outcome: Any, state: str
) -> None:
    backend.expires, backend.failure_expires = 3600, 7200
    one_step = stored(backend, outcome, state, shared=True, batch_id="b1")
    pipelined = stored(backend, outcome, state, shared=False, batch_id="b1")
    ttls = one_step.pop("ttl"), pipelined.pop("ttl")
    assert one_step == pipelined
    expires = 3600 if state == states.SUCCESS else 7200
    assert all(expires - 5 <= ttl <= expires for ttl in ttls)
    assert one_step["record"] == {b"job": b"eksops:job:c:ns:nightly"}
    ended = b"succeeded" if state == states.SUCCESS else b"failed"
    assert one_step["event"] == {
        b"kind": b"request",
        b"request_id": b"ID",
        b"batch_id": b"b1",
        b"state": ended,
    }
    assert one_step["published"] == [
        ("celery-task-meta-ID", one_step["meta"]),
        ("eksops:notify:request:ID", ended),
    ]


def test_a_result_without_expiry_is_kept(backend: Any) -> None:
    backend.expires = None
    assert stored(backend, {"ok": True}, states.SUCCESS, shared=True)["ttl"] == -1


def test_a_request_with_a_callback_queues_it_with_its_outcome(backend: Any) -> None:
    seen = stored(
        backend, {"ok": True}, states.SUCCESS, shared=True, callback="https://example.test/hook"
    )
    assert seen["meta"]["status"] == states.SUCCESS
    assert json.loads(seen["record"][b"callback:request"])["state"] == "pending"
    (entry,) = [fields for _id, fields in backend.client.xrange(callbacks.OUTBOX_KEY)]
    assert entry[b"url"] == b"https://example.test/hook"
