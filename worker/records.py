"""The per-request record in Redis: what Celery's result meta does not keep.

Celery stores a task's state and result; it does not remember that an ID was ever
submitted (an unknown ID and a queued one both read ``PENDING``), when it was
submitted, or how many times it ran. The record (a hash at ``eksops:request:<id>``,
in the broker's Redis, expiring with the results) holds exactly that:

* ``operation``, ``submitted_at``, ``batch_id`` — written by the producer in the same
  atomic step that enqueues the message (see ``producer.enqueue``);
* ``attempts``, ``started_at``, ``last_started_at`` — written by the worker each time
  the task starts, which is how an operation knows it is running again after a
  redelivery or retry.

Pure redis-py; shared by producers and workers.
"""

from __future__ import annotations

from typing import Any

from worker.contracts import BATCH_KEY_PREFIX, REQUEST_KEY_PREFIX
from worker.timestamps import now_iso


def record_key(request_id: str) -> str:
    """Return the Redis key of a request's record."""
    return REQUEST_KEY_PREFIX + request_id


def batch_key(batch_id: str) -> str:
    """Return the Redis key of a batch's summary (operation, created_at, counts)."""
    return BATCH_KEY_PREFIX + batch_id


def batch_items_key(batch_id: str) -> str:
    """Return the Redis key of a batch's request IDs, in submission order."""
    return BATCH_KEY_PREFIX + batch_id + ":items"


def start_attempt(
    redis: Any,
    request_id: str,
    *,
    operation: str,
    ttl_seconds: int,
    result_key: bytes | None = None,
) -> tuple[int, bytes | None]:
    """Count one more start of ``request_id``; return its attempt number (1-based).

    With ``result_key`` (the Celery result key, when results live in the same Redis),
    the stored result is read in the same round trip and returned too.
    """
    key = record_key(request_id)
    now = now_iso()
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(key, "attempts", 1)
    pipe.hsetnx(key, "started_at", now)
    pipe.hsetnx(key, "operation", operation)
    pipe.hset(key, "last_started_at", now)
    pipe.expire(key, ttl_seconds)
    if result_key is not None:
        pipe.get(result_key)
    replies = pipe.execute()
    stored = replies[5] if result_key is not None else None
    return int(replies[0]), stored


def read_record(redis: Any, request_id: str) -> dict[str, str]:
    """Return a request's record as text fields; empty if the ID was never submitted."""
    raw = redis.hgetall(record_key(request_id))
    return {_text(key): _text(value) for key, value in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
