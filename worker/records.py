"""The per-request record in Redis: what Celery's result meta does not keep.

Celery stores a task's state and result; it does not remember that an ID was ever
submitted (an unknown ID and a queued one both read ``PENDING``), when it was
submitted, or how many times it ran. The record (a hash at ``eksops:request:<id>``,
in the broker's Redis, expiring with the results) holds exactly that:

* ``operation``, ``submitted_at``, ``batch_id``, ``message`` — written by the producer
  in the same atomic step that enqueues the message (see ``producer.enqueue``);
  ``message`` is the ID of the message that carries the request (its own, or the
  chunk of a bulk submission), the only one allowed to run it;
* ``attempts``, ``started_at``, ``last_started_at`` — written by the worker each time
  the task starts, which is how an operation knows it is running again after a
  redelivery or retry, and how pollers see it started; ``last_retry_at`` when a retry
  was scheduled, so pollers tell "waiting to retry" from "running again".

Beside it, ``eksops:request:<id>:lease`` names the one execution allowed to run the
request right now (see ``worker.leases``).

Pure redis-py; shared by producers and workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


def batch_ended_key(batch_id: str) -> str:
    """Return the Redis key of a batch's items known to have ended, and how."""
    return BATCH_KEY_PREFIX + batch_id + ":ended"


def lease_key(request_id: str) -> str:
    """Return the Redis key of the lease held by the execution running a request."""
    return REQUEST_KEY_PREFIX + request_id + ":lease"


# KEYS: per request, three: lease, record, stored result ('' when results live in
# another Redis). ARGV: holder, lease ms, now, operation, record TTL s, message ID.
# Returns per request three values: 1 leased | 0 lease held elsewhere | 2 another
# message owns the request; the attempt number (0 unless leased); the stored result.
_START_SCRIPT = """
local out = {}
for i = 1, #KEYS, 3 do
  local stored = false
  if KEYS[i + 2] ~= '' then stored = redis.call('GET', KEYS[i + 2]) end
  local code, attempt = 1, 0
  local owner = redis.call('HGET', KEYS[i + 1], 'message')
  local holder = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[6] then
    code = 2
  elseif holder and holder ~= ARGV[1] then
    code = 0
  else
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    attempt = redis.call('HINCRBY', KEYS[i + 1], 'attempts', 1)
    redis.call('HSETNX', KEYS[i + 1], 'started_at', ARGV[3])
    redis.call('HSETNX', KEYS[i + 1], 'operation', ARGV[4])
    redis.call('HSET', KEYS[i + 1], 'last_started_at', ARGV[3])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[5])
  end
  out[#out + 1] = code
  out[#out + 1] = attempt
  out[#out + 1] = stored
end
return out
"""


@dataclass(frozen=True)
class Start:
    """What a task learns when it starts: whether it runs, which attempt, prior outcome."""

    leased: bool
    attempt: int
    stored: bytes | None
    # Another message owns the request (a duplicate inside another chunk): not ours to run.
    foreign: bool = False


class Starter:
    """Starts executions of requests: lease, attempt count and stored result, atomically."""

    def __init__(self, redis: Any) -> None:
        self._script = redis.register_script(_START_SCRIPT)

    def start(
        self,
        request_id: str,
        *,
        holder: str,
        operation: str,
        lease_ms: int,
        ttl_seconds: int,
        message_id: str,
        result_key: bytes | str | None = None,
    ) -> Start:
        """Try to take the request's lease (or keep it: same holder); count the attempt.

        ``message_id`` is the message being run: a request recorded as enqueued by
        another message is left to that one. With ``result_key`` (results in the same
        Redis) the stored result comes back in the same round trip.
        """
        (start,) = self.start_many(
            [(request_id, result_key)],
            holder=holder,
            operation=operation,
            lease_ms=lease_ms,
            ttl_seconds=ttl_seconds,
            message_id=message_id,
        )
        return start

    def start_many(
        self,
        requests: Sequence[tuple[str, bytes | str | None]],
        *,
        holder: str,
        operation: str,
        lease_ms: int,
        ttl_seconds: int,
        message_id: str,
    ) -> list[Start]:
        """:meth:`start` for many requests (ID, result key) of one message, in one trip."""
        keys: list[Any] = []
        for request_id, result_key in requests:
            keys += [lease_key(request_id), record_key(request_id), result_key or ""]
        replies = self._script(
            keys=keys, args=[holder, lease_ms, now_iso(), operation, ttl_seconds, message_id]
        )
        return [
            Start(leased=code == 1, attempt=int(attempt), stored=stored or None, foreign=code == 2)
            for code, attempt, stored in zip(
                replies[::3], replies[1::3], replies[2::3], strict=True
            )
        ]


def next_attempt(redis: Any, request_id: str) -> int:
    """Count one more attempt by the execution that holds the lease; return its number."""
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(record_key(request_id), "attempts", 1)
    pipe.hset(record_key(request_id), "last_started_at", now_iso())
    attempt, _ = pipe.execute()
    return int(attempt)


def mark_retrying(redis: Any, request_id: str) -> None:
    """Note when a retry was scheduled: Celery's RETRY state carries no timestamp."""
    redis.hset(record_key(request_id), "last_retry_at", now_iso())


def read_record(redis: Any, request_id: str) -> dict[str, str]:
    """Return a request's record as text fields; empty if the ID was never submitted."""
    raw = redis.hgetall(record_key(request_id))
    return {_text(key): _text(value) for key, value in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
