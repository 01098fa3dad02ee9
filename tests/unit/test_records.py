"""The request record: one schema, and attempts that count executions, not deliveries."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
import redis as redis_lib

from worker.records import (
    Alongside,
    Claim,
    Field,
    RequestRecord,
    SentStart,
    Start,
    Starter,
    lua,
    read_record,
    record_key,
    unstart,
)

RID = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"
RESULT_KEY = f"celery-task-meta-{RID}"


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def new_starter(redis: fakeredis.FakeRedis) -> Starter:
    return Starter(redis, lease_ms=30_000, ttl_seconds=60)


def start(
    starter: Starter, *, holder: str = "h1", message: str = RID, alongside: Alongside | None = None
) -> Start:
    (started,) = starter.start_many(
        [(RID, RESULT_KEY)], Claim(holder, "eksops.create_job", message), alongside=alongside
    )
    return started


class Beside:
    """Queues one more command on the start's pipeline and keeps the reply it gets."""

    def __init__(self, *command: str) -> None:
        self.command = command
        self.replies: list[object] = []

    def __call__(self, pipe: Any) -> Any:
        pipe.execute_command(*self.command)
        return self.replies.append


def test_scripts_name_the_fields_as_the_readers_do() -> None:
    assert lua("redis.call('HGET', KEYS[1], $attempts)") == (
        "redis.call('HGET', KEYS[1], 'attempts')"
    )
    with pytest.raises(KeyError):
        lua("$not_a_field")


def test_a_record_reads_back_typed_and_a_missing_one_as_none(redis: fakeredis.FakeRedis) -> None:
    assert read_record(redis, RID) is None
    redis.hset(record_key(RID), mapping={Field.OPERATION: "eksops.create_job", Field.ATTEMPTS: 2})
    assert read_record(redis, RID) == RequestRecord(operation="eksops.create_job", attempts=2)


def test_starting_counts_an_attempt_and_takes_the_lease(redis: fakeredis.FakeRedis) -> None:
    starter = new_starter(redis)
    first = start(starter)
    assert (first.leased, first.attempt) == (True, 1)
    assert start(starter, holder="h2").leased is False


def test_what_rides_on_the_start_is_sent_in_its_trip_and_told_its_reply(
    redis: fakeredis.FakeRedis,
) -> None:
    starter = new_starter(redis)
    start(starter)  # loads the start script
    beside = Beside("INCR", "beside")
    again = start(starter, holder="h1", alongside=beside)
    assert (again.leased, again.attempt) == (True, 2)
    assert beside.replies == [1]


def test_a_redelivery_of_an_ended_request_counts_no_attempt(redis: fakeredis.FakeRedis) -> None:
    starter = new_starter(redis)
    start(starter)
    redis.set(RESULT_KEY, json.dumps({"status": "SUCCESS", "result": {}, "task_id": RID}))
    again = start(starter, holder="h2")
    assert again.ended
    assert not again.leased
    record = read_record(redis, RID)
    assert record is not None
    assert record.attempts == 1


def test_a_request_waiting_to_retry_is_not_ended(redis: fakeredis.FakeRedis) -> None:
    starter = new_starter(redis)
    redis.set(RESULT_KEY, json.dumps({"status": "RETRY", "result": None, "task_id": RID}))
    started = start(starter)
    assert (started.leased, started.ended) == (True, False)


def test_another_messages_request_is_left_to_it(redis: fakeredis.FakeRedis) -> None:
    redis.hset(record_key(RID), Field.MESSAGE, "another-message")
    started = start(starter := new_starter(redis))
    assert started.foreign
    assert start(starter, message="another-message").leased


def send(
    starter: Starter, redis: fakeredis.FakeRedis, *, alongside: Alongside | None = None
) -> SentStart:
    return starter.send(
        redis, RID, RESULT_KEY, Claim("h1", "eksops.create_job", RID), alongside=alongside
    )


def test_a_start_sent_ahead_reads_as_the_start_and_gives_its_connection_back(
    redis: fakeredis.FakeRedis,
) -> None:
    starter = new_starter(redis)
    start(starter, holder="other")  # loads the script; then the lease is another's
    redis.delete(f"eksops:request:{RID}:lease")
    beside = Beside("INCR", "beside")
    started = send(starter, redis, alongside=beside).read()
    assert (started.leased, started.attempt) == (True, 2)
    assert redis.get(f"eksops:request:{RID}:lease") == b"h1"
    assert beside.replies == [1]
    pool = redis.connection_pool
    assert pool._in_use_connections == set()  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent_ahead", [False, True], ids=["in one trip", "sent ahead"])
def test_a_start_after_a_script_flush_loads_its_script_and_the_ride_along_sees_its_error(
    redis: fakeredis.FakeRedis, sent_ahead: bool
) -> None:
    starter = new_starter(redis)
    redis.script_flush()
    beside = Beside("EVALSHA", "0" * 40, "0")
    if sent_ahead:
        started = send(starter, redis, alongside=beside).read()
    else:
        started = start(starter, alongside=beside)
    assert (started.leased, started.attempt) == (True, 1)
    (error,) = beside.replies
    assert isinstance(error, redis_lib.exceptions.NoScriptError)


def test_a_start_sent_ahead_whose_reply_is_lost_tells_the_ride_along(
    redis: fakeredis.FakeRedis,
) -> None:
    starter = new_starter(redis)
    start(starter)
    beside = Beside("INCR", "beside")
    sent = send(starter, redis, alongside=beside)
    (connection,) = redis.connection_pool._in_use_connections  # type: ignore[attr-defined]
    connection.read_response = _lost
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        sent.read()
    (error,) = beside.replies
    assert isinstance(error, redis_lib.exceptions.ConnectionError)
    assert redis.connection_pool._in_use_connections == set()  # type: ignore[attr-defined]


def _lost(*_: Any, **__: Any) -> Any:
    raise redis_lib.exceptions.ConnectionError("connection lost")


def test_a_start_never_run_is_undone_lease_and_attempt(redis: fakeredis.FakeRedis) -> None:
    starter = new_starter(redis)
    assert start(starter, holder="ahead").attempt == 1
    assert unstart(redis, RID, "someone else") is False  # not its lease: left alone
    assert unstart(redis, RID, "ahead") is True
    assert redis.get(f"eksops:request:{RID}:lease") is None
    # The execution that runs it is the first attempt, not a retry.
    assert start(starter, holder="run").attempt == 1
