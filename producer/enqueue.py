"""Enqueue requests: record and message written in one atomic Redis step.

Why not ``send_task``: a caller-supplied request ID must yield exactly one task even
when the caller retries after a crash, so "remember this ID" and "push its message"
must happen together or not at all. A small Lua script does both (``HSETNX`` on the
request record, then ``LPUSH`` of the message) and skips IDs already submitted; a
chunk of many requests costs one round trip, which is what makes bulk submission run
at Redis speed instead of one publish per message.

The message is the one Celery would publish, in the format declared once in
``worker.delivery.envelope``; the record's fields are ``worker.records.Field``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import Celery
from redis.exceptions import NoScriptError, RedisError, ResponseError

from producer.batches import batch_items_key
from worker import metrics
from worker.catalog import summarise
from worker.contracts import CHUNK_MAX_ITEMS, QUEUE, Operation
from worker.delivery import lanes
from worker.delivery.envelope import chunk_envelope, envelope
from worker.delivery.lanes import LUA_LANES
from worker.errors import EnqueueInterrupted
from worker.names import new_request_id
from worker.records import REQUEST_KEY_PREFIX, fingerprint, lua, record_key

# KEYS[1..7]: the lanes' keys (``worker.delivery.lanes.Keys``); KEYS[8]: the batch's
# item list; KEYS[9..]: one record per request, message by message. ARGV[1]: record
# TTL; ARGV[2]: submitted_at; ARGV[3]: batch ID ('' for none); ARGV[4]: task name of
# the operation; ARGV[5]: number of messages; ARGV[6]: the callback URL of these
# requests ('' for none; a batch keeps its own in its summary); ARGV[7]: the bulk
# group the messages go to ('' for the interactive lane); ARGV[8]: its weight; ARGV[9]:
# the tenant that submits them ('' for none); then per
# message: its ID, how many requests it carries, its bytes, and each request's
# fingerprint (``worker.records.fingerprint``). A request ID is its record key's
# suffix. Each new request is recorded with the ID of the message that owns it and its
# fingerprint; a message is pushed if it owns at least one request. Replies per
# request: 1 new; 0 duplicate (the ID names a request with the same fingerprint, or
# one recorded without); -1 refused (the record key holds something else); or, the ID
# naming a request of other arguments, that request's operation (a string; empty when
# the request is another tenant's, whose operation a tenant must not learn). Redis
# does not undo a script that fails half-way, so nothing in it may fail for one
# request and strand others.
_SUBMIT_SCRIPT = lua(
    LUA_LANES
    + """
local ttl = tonumber(ARGV[1])
local batch = ARGV[3]
local prefix = string.len('"""
    + REQUEST_KEY_PREFIX
    + """') + 1
local accepted, messages, ids = {}, {}, {}
local key, at = 9, 10
for _ = 1, tonumber(ARGV[5]) do
  local owner, count, body = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2]
  at = at + 3
  local owns = false
  for _ = 1, count do
    local fp = ARGV[at]
    at = at + 1
    local new = redis.pcall('HSETNX', KEYS[key], $submitted_at, ARGV[2])
    if type(new) == 'table' then
      accepted[#accepted + 1] = -1
    elseif new == 1 then
      redis.call('HSET', KEYS[key], $operation, ARGV[4], $batch_id, batch, $message, owner,
        $fingerprint, fp)
      if ARGV[6] ~= '' then redis.call('HSET', KEYS[key], $callback, ARGV[6]) end
      if ARGV[9] ~= '' then redis.call('HSET', KEYS[key], $tenant, ARGV[9]) end
      redis.call('EXPIRE', KEYS[key], ttl)
      ids[#ids + 1] = string.sub(KEYS[key], prefix)
      accepted[#accepted + 1] = 1
      owns = true
    else
      local earlier = redis.call('HMGET', KEYS[key], $fingerprint, $operation, $tenant)
      if ARGV[9] ~= '' and (earlier[3] or '') ~= ARGV[9] then
        accepted[#accepted + 1] = ''  -- another tenant's: nothing of it is said
      elseif earlier[1] and earlier[1] ~= fp then
        accepted[#accepted + 1] = earlier[2] or 'another operation'
      else
        accepted[#accepted + 1] = 0
      end
    end
    key = key + 1
  end
  if owns then messages[#messages + 1] = body end
end
if #messages > 0 then
  if ARGV[7] == '' then
    add_interactive(messages, true)
  else
    add_bulk(ARGV[7], ARGV[8], messages)
  end
end
if #ids > 0 and batch ~= '' then
  redis.call('RPUSH', KEYS[8], unpack(ids))
  redis.call('EXPIRE', KEYS[8], ttl)
end
return accepted
"""
)
logger = logging.getLogger(__name__)

# How long an enqueue waits for a replica's (and the disk's) acknowledgement.
_CONFIRM_TIMEOUT_MS = 2000
# How often producers ask whether their Redis has replicas.
_REPLICAS_RECHECK_SECONDS = 10.0

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
    # Computed when the request gets a message of its own (see ``summarise``).
    summary: str = ""


@dataclass(frozen=True)
class Lane:
    """Where messages wait: the interactive lane, or a bulk group (a batch) and its weight."""

    group: str | None = None
    weight: int = 1

    @property
    def routing_key(self) -> str:
        return lanes.routing_key(self.group)


INTERACTIVE = Lane()


@dataclass(frozen=True)
class Reused:
    """An item whose request ID already names a request of other arguments."""

    operation: str | None  # that request's operation (its task name); None: another tenant's


#: Per item: True enqueued, False a duplicate (same ID, same arguments), or Reused.
Accepted = bool | Reused


def build_message(app: Celery, item: Outgoing, lane: Lane = INTERACTIVE) -> bytes:
    """Return the envelope of ``item``'s own Celery task message."""
    summary = item.summary or summarise(item.kwargs)
    return envelope(
        app,
        item.request_id,
        item.task_name,
        item.kwargs,
        summary,
        routing_key=lane.routing_key,
        priority=lane.weight if lane.group else 0,
    )


def build_chunk_message(
    app: Celery, chunk_id: str, items: Sequence[Outgoing], lane: Lane = INTERACTIVE
) -> bytes:
    """Return the envelope of one chunk message carrying ``items`` (one operation)."""
    operation = Operation.from_task_name(items[0].task_name)
    return chunk_envelope(
        app,
        chunk_id,
        operation,
        [(i.request_id, i.kwargs) for i in items],
        routing_key=lane.routing_key,
        priority=lane.weight if lane.group else 0,
    )


class Enqueuer:
    """Pushes requests onto the eksops queue, each request ID at most once."""

    def __init__(self, app: Celery, redis: Any, *, record_ttl_seconds: int) -> None:
        self._app = app
        self._redis = redis
        self._ttl = record_ttl_seconds
        self._sha = hashlib.sha1(_SUBMIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script ID
        # Whether the submit script was loaded in this Redis by this enqueuer: a single
        # part is then sent by digest alone (a NOSCRIPT, after a restart, loads it).
        self._loaded = False
        self._fsync_supported: bool | None = None
        self._replicas = 0
        self._replicas_asked_at = float("-inf")
        # Whether the last confirmed enqueue is on disk (WAITAOF answered).
        self.fsynced = False

    def _replicated(self) -> bool:
        """Return whether the Redis enqueued to has replicas (asked again every 10 s)."""
        now = time.monotonic()
        if now - self._replicas_asked_at > _REPLICAS_RECHECK_SECONDS:
            try:
                self._replicas = int(self._redis.info("replication").get("connected_slaves", 0))
            except RedisError:
                self._replicas = 0
            self._replicas_asked_at = now
        return self._replicas > 0

    def _aof(self) -> bool:
        if self._fsync_supported is None:
            try:
                persistence = self._redis.info("persistence")
                self._fsync_supported = bool(persistence.get("aof_enabled"))
            except RedisError:
                self._fsync_supported = False
        return self._fsync_supported

    def _confirm(self, connection: Any, *, fsync: bool) -> None:
        """Wait, on the connection that wrote, until a replica (and the disk) has it.

        ``WAIT`` and ``WAITAOF`` count the writes of the client that sends them, so they
        go on the enqueue's own connection. A replicated Redis (Sentinel, ElastiCache
        with a replica) acknowledges each enqueue from a replica, so a failover right
        after it cannot lose it; with ``fsync`` (bulk submits), the append-only file
        too, where the server keeps one (Redis 7.2+ or Valkey). A confirmation that
        does not come in time is logged: the enqueue happened, it is only less safe.
        """
        if self._replicated() and not self._command(connection, "WAIT", 1, _CONFIRM_TIMEOUT_MS):
            logger.warning("No replica acknowledged the enqueue within %d ms", _CONFIRM_TIMEOUT_MS)
        if fsync and self._aof():
            try:
                local, _ = self._command(connection, "WAITAOF", 1, 0, _CONFIRM_TIMEOUT_MS)
            except ResponseError:
                self._fsync_supported = False
                return
            self.fsynced = bool(local)

    @staticmethod
    def _command(connection: Any, *args: Any) -> Any:
        connection.send_command(*args)
        return connection.read_response()

    def enqueue(
        self,
        items: Sequence[Outgoing],
        *,
        submitted_at: str,
        batch_id: str = "",
        fsync: bool = False,
        callback: str = "",
        lane: Lane = INTERACTIVE,
        tenant: str = "",
    ) -> list[Accepted]:
        """Enqueue ``items``; return, per item, whether it was new (see :data:`Accepted`).

        Items that fit in one part (a single request, say) go out in one command once
        the script is known to be loaded; a ``NOSCRIPT`` (Redis restarted, or its
        scripts were flushed) ran nothing, so they are sent again behind a load.
        """
        parts = [items[start : start + PART] for start in range(0, len(items), PART)]
        send = partial(
            self.enqueue_parts,
            parts,
            submitted_at=submitted_at,
            batch_id=batch_id,
            fsync=fsync,
            callback=callback,
            lane=lane,
            tenant=tenant,
        )
        if len(parts) == 1 and self._loaded:
            try:
                return send(load=False)
            except EnqueueInterrupted as exc:
                if not isinstance(exc.cause, NoScriptError) or any(
                    flag is not None for flag in exc.accepted
                ):
                    raise
                self._loaded = False
        return send()

    def enqueue_parts(
        self,
        parts: Iterable[Sequence[Outgoing]],
        *,
        submitted_at: str,
        batch_id: str = "",
        fsync: bool = False,
        callback: str = "",
        lane: Lane = INTERACTIVE,
        tenant: str = "",
        load: bool = True,
    ) -> list[Accepted]:
        """Enqueue parts as they come; return, per item in order, whether it was new.

        Each part is one atomic script call, written to the connection as soon as it
        is built and answered later (pipelining), so Redis executes one part while
        this thread builds, and the caller validates, the next. Within a part, requests
        share messages (chunks) as :func:`requests_per_message` says. New items of a
        batch are appended to its item list. If Redis fails,
        :class:`EnqueueInterrupted` says which items are enqueued. The call returns once
        a replica has the items, if Redis has replicas, and (``fsync``) once they are in
        the append-only file, if it keeps one (see :meth:`_confirm`).
        """
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        sizes: list[int] = []
        operations: list[str] = []  # each part's operation, for the submitted counter
        try:
            try:
                if load:
                    connection.send_command("SCRIPT", "LOAD", _SUBMIT_SCRIPT)
                for part in parts:
                    if part:
                        keys, args = self._prepare(
                            part, submitted_at, batch_id, callback, lane, tenant
                        )
                        connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                        sizes.append(len(part))
                        operations.append(Operation.from_task_name(part[0].task_name).value)
                if load:
                    connection.read_response()
                    self._loaded = True
            except (RedisError, OSError) as exc:
                connection.disconnect()
                raise EnqueueInterrupted([None] * sum(sizes), exc) from exc
            accepted = self._replies(connection, sizes)
            _count_submitted(operations, sizes, accepted, lane)
            if any(accepted):
                try:
                    self._confirm(connection, fsync=fsync)
                except (RedisError, OSError) as exc:  # enqueued, but not confirmed
                    connection.disconnect()
                    logger.warning("Could not confirm the enqueue was replicated: %s", exc)
            return accepted
        finally:
            pool.release(connection)

    def _replies(self, connection: Any, sizes: list[int]) -> list[Accepted]:
        accepted: list[Accepted | None] = []
        failure: Exception | None = None
        for size in sizes:
            if failure is not None and not isinstance(failure, ResponseError):
                accepted += [None] * size  # connection lost: outcome unknown
                continue
            try:
                accepted += [_accepted(flag) for flag in connection.read_response()]
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
        return [flag for flag in accepted if flag is not None]

    def _prepare(  # noqa: PLR0917 - one call site, the script's argument order
        self,
        items: Sequence[Outgoing],
        submitted_at: str,
        batch_id: str,
        callback: str = "",
        lane: Lane = INTERACTIVE,
        tenant: str = "",
    ) -> tuple[list[str], list[Any]]:
        if len({item.task_name for item in items}) > 1:
            raise ValueError("one part carries one operation")
        per_message = requests_per_message(len(items))
        items_key = batch_items_key(batch_id) if batch_id else QUEUE
        keys = [
            *lanes.KEYS.as_list(),
            items_key,
            *(record_key(item.request_id) for item in items),
        ]
        groups = [items[start : start + per_message] for start in range(0, len(items), per_message)]
        args: list[Any] = [
            self._ttl,
            submitted_at,
            batch_id,
            items[0].task_name,
            len(groups),
            callback,
            lane.group or "",
            lane.weight,
            tenant,
        ]
        for group in groups:
            if len(group) == 1:
                message_id, body = group[0].request_id, build_message(self._app, group[0], lane)
            else:
                message_id = new_request_id()
                body = build_chunk_message(self._app, message_id, group, lane)
            args += [message_id, len(group), body]
            args += [fingerprint(item.task_name, item.kwargs) for item in group]
        return keys, args


def _count_submitted(
    operations: list[str], sizes: list[int], accepted: list[Accepted], lane: Lane
) -> None:
    """Count the new requests of each part (``eksops_requests_submitted_total``)."""
    start = 0
    for operation, size in zip(operations, sizes, strict=True):
        new = sum(flag is True for flag in accepted[start : start + size])
        metrics.submitted(operation, metrics.lane(lane.group is not None), new)
        start += size


def _accepted(flag: Any) -> Accepted | None:
    """One request's reply of the submit script (None: refused, the key holds other data)."""
    if isinstance(flag, bytes | str):
        operation = flag.decode() if isinstance(flag, bytes) else flag
        return Reused(operation or None)
    return None if flag < 0 else bool(flag)
