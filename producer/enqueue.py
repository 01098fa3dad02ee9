"""Enqueue requests: record and message written in one atomic Redis step.

Why not ``send_task``: a caller-supplied request ID must yield exactly one task even
when the caller retries after a crash, so "remember this ID" and "push its message"
must happen together or not at all. A small Lua script does both (``HSETNX`` on the
request record, then ``LPUSH`` of the message) and skips IDs already submitted; a
chunk of many requests costs one round trip, which is what makes bulk submission run
at Redis speed instead of one publish per message.

The message is the one Celery would publish: Celery builds the task message
(``app.amqp.as_task_v2``) and the envelope is kombu's Redis transport format, both
JSON (checked against kombu's own output in the tests).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from celery import Celery
from kombu.serialization import dumps as kombu_dumps
from redis.exceptions import RedisError, ResponseError

from worker.contracts import CHUNK_MAX_ITEMS, CHUNK_TASK, QUEUE, REQUEST_KEY_PREFIX, Operation
from worker.names import new_request_id
from worker.records import batch_items_key, record_key

_ORIGIN = f"eksops-producer@{socket.gethostname()}:{os.getpid()}"

# KEYS[1]: the queue list; KEYS[2]: the batch's item list; KEYS[3..]: one record per
# request, message by message. ARGV[1]: record TTL; ARGV[2]: submitted_at; ARGV[3]:
# batch ID ('' for none); ARGV[4]: task name of the operation; ARGV[5]: number of
# messages; then per message: its ID, how many requests it carries, its bytes. A
# request ID is its record key's suffix. Each new request is recorded with the ID of
# the message that owns it; a message is pushed if it owns at least one request.
# Replies per request: 1 new, 0 duplicate, -1 refused (the record key holds something
# else). Redis does not undo a script that fails half-way, so nothing in it may fail
# for one request and strand others.
_SUBMIT_SCRIPT = (
    """
local ttl = tonumber(ARGV[1])
local batch = ARGV[3]
local prefix = string.len('"""
    + REQUEST_KEY_PREFIX
    + """') + 1
local accepted, messages, ids = {}, {}, {}
local key = 3
for m = 0, tonumber(ARGV[5]) - 1 do
  local owner, count = ARGV[6 + m * 3], tonumber(ARGV[7 + m * 3])
  local owns = false
  for _ = 1, count do
    local new = redis.pcall('HSETNX', KEYS[key], 'submitted_at', ARGV[2])
    if type(new) == 'table' then
      accepted[#accepted + 1] = -1
    elseif new == 1 then
      redis.call('HSET', KEYS[key], 'operation', ARGV[4], 'batch_id', batch, 'message', owner)
      redis.call('EXPIRE', KEYS[key], ttl)
      ids[#ids + 1] = string.sub(KEYS[key], prefix)
      accepted[#accepted + 1] = 1
      owns = true
    else
      accepted[#accepted + 1] = 0
    end
    key = key + 1
  end
  if owns then messages[#messages + 1] = ARGV[8 + m * 3] end
end
if #messages > 0 then
  redis.call('LPUSH', KEYS[1], unpack(messages))
end
if #ids > 0 and batch ~= '' then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('EXPIRE', KEYS[2], ttl)
end
return accepted
"""
)
# Requests per script call: one part is atomic and keeps Redis busy for ~10 ms at most;
# well under Lua's unpack() limit of ~8000 values. A multiple of CHUNK_MAX_ITEMS.
PART = 30 * CHUNK_MAX_ITEMS
# A part is spread over at least this many messages, so a small burst still keeps
# that many worker threads busy; a large one travels CHUNK_MAX_ITEMS per message.
_MIN_MESSAGES_PER_PART = 30


def requests_per_message(part_size: int) -> int:
    """Return how many requests of a part of ``part_size`` share one message."""
    return max(1, min(CHUNK_MAX_ITEMS, part_size // _MIN_MESSAGES_PER_PART))


@dataclass(frozen=True)
class Outgoing:
    """One validated request ready to enqueue."""

    request_id: str
    task_name: str
    kwargs: dict[str, Any]
    # What Flower and Celery's log lines show for the arguments: a short summary, not
    # the whole manifest (Celery's own repr of a manifest costs most of a submit).
    # Computed when the request gets a message of its own (see ``describe``).
    summary: str = ""


def describe(arguments: Mapping[str, Any]) -> str:
    """Return the seed's ``key=value`` summary of a request, without the manifest body.

    Total over any arguments: a message built from unvalidated arguments (a manifest
    that is not a mapping) still gets a summary, and the worker names the problem.
    """
    parts = []
    manifest = arguments.get("job_manifest")
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if name:
        parts.append(f"job={name}")
    for key, label in (
        ("job_name", "job"),
        ("namespace", "namespace"),
        ("namespace_name", "namespace"),
    ):
        if key in arguments:
            parts.append(f"{label}={arguments[key]}")
    return " ".join(parts)


def _envelope(
    app: Celery, task_id: str, task_name: str, kwargs: dict[str, Any], summary: str
) -> bytes:
    task = app.amqp.as_task_v2(
        task_id,
        task_name,
        kwargs=kwargs,
        origin=_ORIGIN,
        argsrepr="()",
        kwargsrepr=summary or "{...}",
    )
    if app.conf.task_serializer == "auth":  # signed messages (see celeryconfig)
        content_type, content_encoding, payload = kombu_dumps(task.body, serializer="auth")
        body = payload.encode() if isinstance(payload, str) else payload
    else:
        content_type, content_encoding, body = "application/json", "utf-8", orjson.dumps(task.body)
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": {
            **task.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            # Unique per message: a message ID is enqueued once (retries are new
            # messages that kombu tags itself).
            "delivery_tag": task_id,
        },
    }
    return orjson.dumps(envelope)


def build_message(app: Celery, item: Outgoing) -> bytes:
    """Return the kombu Redis envelope of ``item``'s own Celery task message.

    Serialised with orjson: same JSON as kombu's encoder for these plain types, at a
    fraction of the cost, which is most of what a bulk submit spends per message.
    """
    summary = item.summary or describe(item.kwargs)
    return _envelope(app, item.request_id, item.task_name, item.kwargs, summary)


def build_chunk_message(app: Celery, chunk_id: str, items: Sequence[Outgoing]) -> bytes:
    """Return the envelope of one chunk message carrying ``items`` (one operation)."""
    operation = Operation.from_task_name(items[0].task_name)
    kwargs = {
        "operation": operation.value,
        "items": [{"request_id": item.request_id, "arguments": item.kwargs} for item in items],
    }
    return _envelope(app, chunk_id, CHUNK_TASK, kwargs, f"{operation.value} x{len(items)}")


class Enqueuer:
    """Pushes requests onto the eksops queue, each request ID at most once."""

    def __init__(self, app: Celery, redis: Any, *, record_ttl_seconds: int) -> None:
        self._app = app
        self._redis = redis
        self._ttl = record_ttl_seconds
        self._sha = hashlib.sha1(_SUBMIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script ID
        self._fsync_supported: bool | None = None

    def wait_for_fsync(self, timeout_ms: int = 2000) -> bool:
        """Wait until Redis has written what we enqueued to its append-only file.

        Returns whether that could be confirmed: ``WAITAOF`` needs Redis 7.2+ (or
        Valkey) with ``appendonly yes``; elsewhere durability is what the server's own
        persistence settings give, and this returns False.
        """
        if self._fsync_supported is None:
            try:
                persistence = self._redis.info("persistence")
                self._fsync_supported = bool(persistence.get("aof_enabled"))
            except RedisError:
                self._fsync_supported = False
        if not self._fsync_supported:
            return False
        try:
            local, _replicas = self._redis.execute_command("WAITAOF", 1, 0, timeout_ms)
        except ResponseError:
            self._fsync_supported = False
            return False
        return bool(local)

    def enqueue(
        self, items: Sequence[Outgoing], *, submitted_at: str, batch_id: str = ""
    ) -> list[bool]:
        """Enqueue ``items``; return, per item, whether it was new (False: duplicate ID)."""
        parts = (items[start : start + PART] for start in range(0, len(items), PART))
        return self.enqueue_parts(parts, submitted_at=submitted_at, batch_id=batch_id)

    def enqueue_parts(
        self, parts: Iterable[Sequence[Outgoing]], *, submitted_at: str, batch_id: str = ""
    ) -> list[bool]:
        """Enqueue parts as they come; return, per item in order, whether it was new.

        Each part is one atomic script call, written to the connection as soon as it
        is built and answered later (pipelining), so Redis executes one part while
        this thread builds, and the caller validates, the next. Within a part, requests
        share messages (chunks) as :func:`requests_per_message` says. New items of a
        batch are appended to its item list. If Redis fails,
        :class:`EnqueueInterrupted` says which items are enqueued.
        """
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        sizes: list[int] = []
        try:
            try:
                connection.send_command("SCRIPT", "LOAD", _SUBMIT_SCRIPT)
                for part in parts:
                    if part:
                        keys, args = self._prepare(part, submitted_at, batch_id)
                        connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                        sizes.append(len(part))
                connection.read_response()
            except (RedisError, OSError) as exc:
                connection.disconnect()
                raise EnqueueInterrupted([None] * sum(sizes), exc) from exc
            return self._replies(connection, sizes)
        finally:
            pool.release(connection)

    def _replies(self, connection: Any, sizes: list[int]) -> list[bool]:
        accepted: list[bool | None] = []
        failure: Exception | None = None
        for size in sizes:
            if failure is not None and not isinstance(failure, ResponseError):
                accepted += [None] * size  # connection lost: outcome unknown
                continue
            try:
                accepted += [
                    None if flag < 0 else bool(flag) for flag in connection.read_response()
                ]
            except ResponseError as exc:  # this part failed; later ones may not have
                failure = exc
                accepted += [None] * size
            except (RedisError, OSError) as exc:
                connection.disconnect()
                failure = exc
                accepted += [None] * size
        if failure is None and None in accepted:
            failure = ResponseError("a request record key holds a value of another type")
        if failure is not None:
            raise EnqueueInterrupted(accepted, failure)
        return [bool(flag) for flag in accepted]

    def _prepare(
        self, items: Sequence[Outgoing], submitted_at: str, batch_id: str
    ) -> tuple[list[str], list[Any]]:
        if len({item.task_name for item in items}) > 1:
            raise ValueError("one part carries one operation")
        per_message = requests_per_message(len(items))
        items_key = batch_items_key(batch_id) if batch_id else QUEUE
        keys = [QUEUE, items_key, *(record_key(item.request_id) for item in items)]
        groups = [items[start : start + per_message] for start in range(0, len(items), per_message)]
        args: list[Any] = [self._ttl, submitted_at, batch_id, items[0].task_name, len(groups)]
        for group in groups:
            if len(group) == 1:
                args += [group[0].request_id, 1, build_message(self._app, group[0])]
            else:
                chunk_id = new_request_id()
                args += [chunk_id, len(group), build_chunk_message(self._app, chunk_id, group)]
        return keys, args


class EnqueueInterrupted(Exception):
    """Raised when Redis failed during an enqueue; says which items went in.

    ``accepted`` has one entry per item sent: True (enqueued), False (a duplicate ID,
    nothing enqueued) or None (not enqueued, or unknown because the connection broke:
    resubmitting the same request IDs is safe either way).
    """

    def __init__(self, accepted: list[bool | None], cause: Exception) -> None:
        self.accepted = accepted
        self.enqueued = sum(1 for flag in accepted if flag)
        super().__init__(
            f"Redis failed during the enqueue ({self.enqueued} items enqueued): {cause}"
        )
