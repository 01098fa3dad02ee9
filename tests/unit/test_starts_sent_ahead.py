"""A start sent ahead by the consumer: read by its run, or undone if no run reads it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from celery import Celery

from worker import engine as engine_module
from worker.contracts import Operation
from worker.engine import Engine
from worker.executions import Executions
from worker.leases import LeaseKeeper
from worker.records import Starter, lease_key, read_record

RID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def engine(redis: fakeredis.FakeRedis) -> Engine:
    app = Celery("t", set_as_current=False)
    app.conf.update(
        result_backend="redis://fake", result_serializer="json", result_accept_content=["json"]
    )
    backend = app.backend
    backend.client = redis
    leases = LeaseKeeper(redis, ttl_seconds=30)
    executions = Executions(
        starter=Starter(redis, lease_ms=leases.ttl_ms, ttl_seconds=600),
        leases=leases,
        redis=redis,
        backend=lambda: backend,
        shared_redis=True,
        sender=redis,
    )
    # The parts of a runtime a start touches: no cluster client is built yet.
    runtime: Any = SimpleNamespace(
        executions=executions,
        leases=leases,
        redis=redis,
        clusters=SimpleNamespace(built=lambda _ref: None),
    )
    return Engine(runtime)


def _sent(engine: Engine) -> Any:
    return engine._sent_ahead(RID)


def _handing_over(engine: Engine, operation: Operation) -> tuple[threading.Thread, threading.Event]:
    """A consumer thread inside its hand-over of the message, until the event is set."""
    inside, leave = threading.Event(), threading.Event()

    def consumer() -> None:
        with engine.sending_start(RID, operation, {}):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=consumer)
    thread.start()
    inside.wait(5)
    return thread, leave


def test_the_run_reads_the_start_the_consumer_sent(
    engine: Engine, redis: fakeredis.FakeRedis
) -> None:
    with engine.sending_start(RID, Operation.CREATE_JOB, {}):
        assert redis.get(lease_key(RID)) is None  # sent as the hand-over ends
    sent = _sent(engine)
    assert sent is not None
    start = sent.start.read()
    assert (start.leased, start.attempt) == (True, 1)
    assert redis.get(lease_key(RID)) == sent.holder.encode()
    assert _sent(engine) is None  # read once


def test_a_run_that_gets_there_first_waits_for_the_send(engine: Engine) -> None:
    found: list[Any] = []
    thread, leave = _handing_over(engine, Operation.CREATE_JOB)
    runner = threading.Thread(target=lambda: found.append(_sent(engine)))
    runner.start()
    time.sleep(0.1)
    assert not found  # waiting for the send
    leave.set()
    runner.join(5)
    thread.join(5)
    (sent,) = found
    assert sent is not None
    assert sent.start.read().attempt == 1


def test_a_start_no_run_reads_is_undone(
    engine: Engine, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.sending_start(RID, Operation.DELETE_JOB, {}):
        pass
    monkeypatch.setattr(engine_module, "SENT_STALE_SECONDS", 0.0)
    time.sleep(0.01)
    engine.drop_stale()
    assert redis.get(lease_key(RID)) is None
    record = read_record(redis, RID)
    assert record is not None
    assert record.attempts == 0
    assert _sent(engine) is None


def test_a_run_that_gave_up_waiting_leaves_the_start_to_be_undone(
    engine: Engine, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SENT_WAIT_SECONDS", 0.05)
    thread, leave = _handing_over(engine, Operation.DELETE_JOB)
    assert _sent(engine) is None  # gave up: the run starts the request itself
    leave.set()
    thread.join(5)
    assert redis.get(lease_key(RID)) is None  # the consumer undid its late start
    record = read_record(redis, RID)
    assert record is not None
    assert record.attempts == 0
