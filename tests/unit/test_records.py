"""The request record: one schema, and attempts that count executions, not deliveries."""

from __future__ import annotations

import json

import fakeredis
import pytest

from worker.records import Field, RequestRecord, Start, Starter, lua, read_record, record_key

RID = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"
RESULT_KEY = f"celery-task-meta-{RID}"


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def start(starter: Starter, *, holder: str = "h1", message: str = RID) -> Start:
    (started,) = starter.start_many(
        [(RID, RESULT_KEY)],
        holder=holder,
        operation="eksops.create_job",
        lease_ms=30_000,
        ttl_seconds=60,
        message_id=message,
    )
    return started


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
    starter = Starter(redis)
    first = start(starter)
    assert (first.leased, first.attempt) == (True, 1)
    assert start(starter, holder="h2").leased is False


def test_a_redelivery_of_an_ended_request_counts_no_attempt(redis: fakeredis.FakeRedis) -> None:
    starter = Starter(redis)
    start(starter)
    redis.set(RESULT_KEY, json.dumps({"status": "SUCCESS", "result": {}, "task_id": RID}))
    again = start(starter, holder="h2")
    assert again.ended
    assert not again.leased
    record = read_record(redis, RID)
    assert record is not None
    assert record.attempts == 1


def test_a_request_waiting_to_retry_is_not_ended(redis: fakeredis.FakeRedis) -> None:
    starter = Starter(redis)
    redis.set(RESULT_KEY, json.dumps({"status": "RETRY", "result": None, "task_id": RID}))
    started = start(starter)
    assert (started.leased, started.ended) == (True, False)


def test_another_messages_request_is_left_to_it(redis: fakeredis.FakeRedis) -> None:
    redis.hset(record_key(RID), Field.MESSAGE, "another-message")
    started = start(starter := Starter(redis))
    assert started.foreign
    assert start(starter, message="another-message").leased
