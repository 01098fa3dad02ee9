"""The request record: one schema for the Lua scripts and the Python readers.

Celery stores a task's state and result; it does not remember that an ID was ever
submitted (an unknown ID and a queued one both read ``PENDING``), when it was
submitted, or how many times it ran. The record (a hash at ``eksops:request:<id>``,
in the broker's Redis, expiring with the results) holds exactly that. Its fields are
:class:`Field`; every script that writes them is written with ``$name`` placeholders
filled from :class:`Field` by :func:`lua`, and every reader parses a hash with
:meth:`RequestRecord.from_hash`, so a field has one spelling everywhere.

* written by the producer in the same atomic step that enqueues the message (see
  ``producer.enqueue``): ``submitted_at``, ``operation``, ``batch_id``, ``tenant``, ``message`` —
  the ID of the message that carries the request (its own, or the chunk of a bulk
  submission), the only one allowed to run it;
* written by the worker when an execution starts (see :class:`Starter`): ``attempts``
  (executions, not deliveries: a redelivery of a request that has ended counts
  nothing), ``started_at``, ``last_started_at``; ``last_retry_at`` when a retry was
  scheduled, so pollers tell "waiting to retry" from "running again"; ``job``, the
  record key of the Job a create-job request made (``worker.jobrecords``), written with
  its outcome and again by the job tracker; ``arguments`` of a request that failed, so
  a batch's failed requests can be retried;
* written by a canceller (see :func:`cancel_many`): ``cancelled_at``.

Beside it, ``eksops:request:<id>:lease`` names the one execution allowed to run the
request right now (see ``worker.leases``). Pure redis-py; shared by producers and workers.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker.events import EVENTS_MAX_LENGTH, REQUEST_EVENT_LUA, STREAM_KEY
from worker.timestamps import now_iso

REQUEST_KEY_PREFIX = "eksops:request:"


class Field(enum.StrEnum):
    """The fields of a request record."""

    SUBMITTED_AT = "submitted_at"
    OPERATION = "operation"
    BATCH_ID = "batch_id"
    MESSAGE = "message"
    ATTEMPTS = "attempts"
    STARTED_AT = "started_at"
    LAST_STARTED_AT = "last_started_at"
    LAST_RETRY_AT = "last_retry_at"
    JOB = "job"  # the record key of the Job a create-job request made
    CALLBACK = "callback"  # where terminal transitions are POSTed (a batch's: its summary)
    # How the callbacks of the request's end and of its Job's end went (JSON each).
    CALLBACK_REQUEST = "callback:request"
    CALLBACK_JOB = "callback:job"
    # The request's operation and arguments, hashed (see :func:`fingerprint`): the same
    # request ID with other arguments is a conflict, not a duplicate.
    FINGERPRINT = "fingerprint"
    # When the request was cancelled before it ran (see :data:`_CANCEL`): no execution
    # starts it after that.
    CANCELLED_AT = "cancelled_at"
    # A failed request's arguments (JSON), so its batch can be retried as a new one.
    ARGUMENTS = "arguments"
    # The tenant that submitted the request (``worker.tenants``); absent: no tenant.
    TENANT = "tenant"


def fingerprint(task_name: str, kwargs: Mapping[str, Any]) -> str:
    """Return the hash of an operation and its validated arguments, in canonical form.

    Canonical: the arguments as the worker receives them (validated, defaults filled),
    JSON with sorted keys, so the same request spelled differently has one fingerprint.
    """
    canonical = orjson.dumps([task_name, kwargs], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def lua(script: str) -> str:
    """Return ``script`` with each ``$field`` replaced by that field's name as a Lua string."""
    return string.Template(script).substitute({f.value: f"'{f.value}'" for f in Field})


def record_key(request_id: str) -> str:
    """Return the Redis key of a request's record."""
    return REQUEST_KEY_PREFIX + request_id


def lease_key(request_id: str) -> str:
    """Return the Redis key of the lease held by the execution running a request."""
    return REQUEST_KEY_PREFIX + request_id + ":lease"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class RequestRecord:
    """A request record as read back; ``None`` fields were never written."""

    submitted_at: str | None = None
    operation: str | None = None
    batch_id: str | None = None
    message: str | None = None
    attempts: int = 0
    started_at: str | None = None
    last_started_at: str | None = None
    last_retry_at: str | None = None
    job: str | None = None
    callback: str | None = None
    cancelled_at: str | None = None
    arguments: str | None = None
    tenant: str | None = None
    callbacks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> RequestRecord | None:
        """Parse an ``HGETALL`` reply; ``None`` if the request was never submitted."""
        if not raw:
            return None
        values = {_text(key): _text(value) for key, value in raw.items()}
        known: dict[str, Any] = {
            f.name: values.get(f.name) or None for f in fields(cls) if f.name != "callbacks"
        }
        known[Field.ATTEMPTS] = int(values.get(Field.ATTEMPTS) or 0)
        known["callbacks"] = {
            kind: json.loads(values[f"callback:{kind}"])
            for kind in ("request", "job")
            if values.get(f"callback:{kind}")
        }
        return cls(**known)


def read_record(redis: Any, request_id: str) -> RequestRecord | None:
    """Return a request's record; ``None`` if the ID was never submitted (or expired)."""
    return RequestRecord.from_hash(redis.hgetall(record_key(request_id)))


# Lua, inside a loop over requests whose record key is KEYS[i + 1]: the request's batch
# ID, and where its end is told (its own callback URL, or its batch's).
_BATCH_AND_CALLBACK = """  local batch = redis.call('HGET', KEYS[i + 1], $batch_id)
  local callback = redis.call('HGET', KEYS[i + 1], $callback)
  if not callback and batch and batch ~= '' then
    callback = redis.call('HGET', 'eksops:batch:' .. batch, 'callback')
  end
"""


# KEYS: per request, three: lease, record, stored result ('' when results live in
# another Redis). ARGV: holder, lease ms, now, operation, record TTL s, message ID,
# event stream, its length bound. Returns per request five values: a code (1 leased |
# 0 lease held elsewhere | 2 another message owns the request | 3 it has ended: its
# final outcome is stored); the attempt number (0 unless leased); the stored result
# (or false); the batch ID (or false); the callback URL, its own or its batch's (or
# false). An ended request counts no attempt:
# ``attempts`` counts executions, not deliveries. A start is an event of the stream.
_START_FUNCTION = lua(
    """
local function start(KEYS, ARGV)
local final = {SUCCESS = true, FAILURE = true, REVOKED = true}
local prefix = string.len('"""
    + REQUEST_KEY_PREFIX
    + """') + 1
local out = {}
for i = 1, #KEYS, 3 do
  local stored = false
  if KEYS[i + 2] ~= '' then stored = redis.call('GET', KEYS[i + 2]) end
  local ended = false
  if stored then
    local ok, meta = pcall(cjson.decode, stored)
    ended = ok and type(meta) == 'table' and final[meta.status] == true
  end
  local code, attempt = 1, 0
  local owner = redis.call('HGET', KEYS[i + 1], $message)
  local holder = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[6] then
    code = 2
  elseif ended then
    code = 3
  elseif redis.call('HEXISTS', KEYS[i + 1], $cancelled_at) == 1 then
    code = 4
  elseif holder and holder ~= ARGV[1] then
    code = 0
  else
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    attempt = redis.call('HINCRBY', KEYS[i + 1], $attempts, 1)
    redis.call('HSETNX', KEYS[i + 1], $started_at, ARGV[3])
    redis.call('HSETNX', KEYS[i + 1], $operation, ARGV[4])
    redis.call('HSET', KEYS[i + 1], $last_started_at, ARGV[3])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[5])
  end
"""
    + _BATCH_AND_CALLBACK
    + """  if code == 1 then
    request_event(ARGV[7], ARGV[8], string.sub(KEYS[i + 1], prefix), batch or '', 'started',
      ARGV[3], 'attempt', attempt)
  end
  out[#out + 1] = code
  out[#out + 1] = attempt
  out[#out + 1] = stored
  out[#out + 1] = batch
  out[#out + 1] = callback
end
return out
end
"""
)
_START = REQUEST_EVENT_LUA + _START_FUNCTION + "\nreturn start(KEYS, ARGV)\n"

# Lua: the server's clock as ``now_iso`` writes it (``2026-12-04T19:35:10.465884+00:00``).
ISO_NOW_LUA = """
local function iso_now()
  local clock = redis.call('TIME')
  local seconds, micros = tonumber(clock[1]), tonumber(clock[2])
  local days, rest = math.floor(seconds / 86400), seconds % 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00', year, month, day,
    math.floor(rest / 3600), math.floor(rest % 3600 / 60), rest % 60, micros)
end
"""

# KEYS: the take's note (``lanes.TAKE``: a taker's last take, when a runner may run it).
# ARGV: the note's nonce, holder, lease ms, record TTL s, event stream, its length
# bound, the stored results' key prefix. The start of the request the take just took,
# sent behind the take on the same connection (see ``Starter.after_take``): the note
# names the request and its operation; the time is the server's. Returns the start
# script's five values, or false when the take took nothing a runner may run.
_START_TAKEN = (
    REQUEST_EVENT_LUA
    + ISO_NOW_LUA
    + _START_FUNCTION
    + f"""
local note = redis.call('GET', KEYS[1])
if not note then return false end
local ok, taken = pcall(cjson.decode, note)
if not ok or type(taken) ~= 'table' or taken[1] ~= ARGV[1] then return false end
local rid, operation = taken[2], taken[3]
local prefix = '{REQUEST_KEY_PREFIX}'
return start({{prefix .. rid .. ':lease', prefix .. rid, ARGV[7] .. rid}},
  {{ARGV[2], ARGV[3], iso_now(), operation, ARGV[4], rid, ARGV[5], ARGV[6]}})
"""
)
_START_TAKEN_SHA = hashlib.sha1(_START_TAKEN.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Start:
    """What an execution learns when it starts: whether it runs, which attempt, prior outcome."""

    leased: bool
    attempt: int
    stored: bytes | None
    # Another message owns the request (a duplicate inside another chunk): not ours to run.
    foreign: bool = False
    # Its final outcome is stored already (a redelivery): answer with it, count nothing.
    ended: bool = False
    # It was cancelled before it ran: it never runs.
    cancelled: bool = False
    batch_id: str | None = None
    callback: str | None = None


#: Queues more commands on the pipeline of a start; returns what reads their reply (the
#: limiter's early ask for the request's first call, ``RedisLimiter.ask_early``).
Alongside = Callable[[Any], Callable[[Any], None] | None]


@dataclass(frozen=True)
class Claim:
    """Who starts the requests of one message: the execution (``holder``; starting again
    with the same holder keeps its lease), the operation they are, and the message being
    run (a request recorded as enqueued by another message is left to that one)."""

    holder: str
    operation: str
    message_id: str


class Starter:
    """Starts executions of requests: lease, attempt count and stored result, atomically.

    ``lease_ms``: how long a lease lives unless renewed; ``ttl_seconds``: how long a
    request's record lives.
    """

    def __init__(self, redis: Any, *, lease_ms: int, ttl_seconds: int) -> None:
        self._redis = redis
        self._script = redis.register_script(_START)
        self._lease_ms = lease_ms
        self._ttl_seconds = ttl_seconds

    def start_many(
        self,
        requests: Sequence[tuple[str, bytes | str | None]],
        claim: Claim,
        *,
        alongside: Alongside | None = None,
    ) -> list[Start]:
        """Take the lease of each request (ID, result key) of one message, in one trip.

        With a result key (results in the same Redis) a stored final outcome is found in
        the same trip and nothing is counted. ``alongside`` queues more commands in the
        same trip (its reader is given their reply, or the error that came instead).
        """
        keys, args = self._call(requests, claim)
        if alongside is None:
            return _starts(self._script(keys=keys, args=args))
        pipe, read = self._pipeline(self._redis, keys, args, alongside)
        try:
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:
            if read is not None:
                read(exc)
            raise
        return self._started(keys, args, replies, read)

    def send(
        self,
        client: Any,
        request_id: str,
        result_key: str,
        claim: Claim,
        *,
        alongside: Alongside | None = None,
    ) -> SentStart:
        """Send the start of one request on a connection of ``client``'s own; its reply is
        read later, by :meth:`SentStart.read` (from any thread).

        For a request whose message has just arrived: the trip then overlaps with the
        worker handing the message to the thread that runs it. The same script as
        :meth:`start_many`, with ``alongside`` in the same trip.
        """
        keys, args = self._call([(request_id, result_key)], claim)
        pipe, read = self._pipeline(client, keys, args, alongside)
        commands = [command for command, _options in pipe.command_stack]
        pool = client.connection_pool
        try:
            connection = pool.get_connection()
        except Exception as exc:
            if read is not None:
                read(exc)
            raise
        try:
            connection.send_packed_command(connection.pack_commands(commands))
        except Exception as exc:
            connection.disconnect()
            pool.release(connection)
            if read is not None:
                read(exc)
            raise
        return SentStart(
            lambda: read_replies(pool, connection, len(commands)),
            lambda replies: self._started(keys, args, replies, read)[0],
            lambda exc: read(exc) if read is not None else None,
        )

    def after_take(self, note: str, nonce: str, holder: str, result_prefix: str) -> tuple[Any, ...]:
        """Return the start of the request a take is about to take, as a command to send
        behind that take on the same connection (``worker.delivery.intake``): the take
        leaves a ``note`` (with ``nonce``) naming the request when a runner may run it,
        and this starts it in the same round trip. Read its reply with
        :meth:`taken_start`."""
        args = [nonce, holder, self._lease_ms, self._ttl_seconds, STREAM_KEY, EVENTS_MAX_LENGTH]
        return ("EVALSHA", _START_TAKEN_SHA, 1, note, *args, result_prefix)

    def taken_start(self, reply: Any) -> Start | None:
        """The start :meth:`after_take` made; None if it made none: the take took nothing
        a runner may run, or the script failed (Redis did not know it: loaded now). The
        run then starts the request itself, with the same holder: a start that failed
        midway left nothing another holder would wait for."""
        if isinstance(reply, NoScriptError):
            with contextlib.suppress(RedisError):  # loaded by the next one otherwise
                self._redis.script_load(_START_TAKEN)
            return None
        if isinstance(reply, Exception) or not reply:
            return None
        return _starts(reply)[0]

    def _pipeline(
        self, client: Any, keys: list[Any], args: list[Any], alongside: Alongside | None
    ) -> tuple[Any, Callable[[Any], None] | None]:
        """A pipeline of ``client`` with the start script and what ``alongside`` queues;
        and the reader of what it queued."""
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        return pipe, alongside(pipe) if alongside is not None else None

    def _call(
        self, requests: Sequence[tuple[str, bytes | str | None]], claim: Claim
    ) -> tuple[list[Any], list[Any]]:
        keys: list[Any] = []
        for request_id, result_key in requests:
            keys += [lease_key(request_id), record_key(request_id), result_key or ""]
        args = [
            claim.holder,
            self._lease_ms,
            now_iso(),
            claim.operation,
            self._ttl_seconds,
            claim.message_id,
            STREAM_KEY,
            EVENTS_MAX_LENGTH,
        ]
        return keys, args

    def _started(
        self,
        keys: list[Any],
        args: list[Any],
        replies: list[Any],
        read: Callable[[Any], None] | None,
    ) -> list[Start]:
        """The starts of a pipelined start script (``replies[0]``); what was alongside it
        (``replies[1]``) goes to its reader."""
        if read is not None:
            read(replies[1])
        if isinstance(replies[0], NoScriptError):  # Redis restarted: load it, run it alone
            return _starts(self._script(keys=keys, args=args))
        if isinstance(replies[0], Exception):
            raise replies[0]
        return _starts(replies[0])


# KEYS: lease, record. ARGV: holder. Undoes a start no execution ran (see
# :func:`unstart`): the lease deleted and the attempt uncounted, if the lease is still
# the holder's. Returns 1 if it was, else 0.
_UNSTART = lua(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(redis.call('HGET', KEYS[2], $attempts) or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], $attempts, -1)
end
return 1
"""
)


def unstart(redis: Any, request_id: str, holder: str) -> bool:
    """Undo a start that ``holder`` took but never ran (a start sent ahead of a message
    that did not run): free the lease and uncount the attempt, so the execution that
    runs the request later counts as the attempt it is. Whether the lease was held."""
    keys = [lease_key(request_id), record_key(request_id)]
    return bool(redis.register_script(_UNSTART)(keys=keys, args=[holder]))


@dataclass
class SentStart:
    """A start sent ahead (:meth:`Starter.send`), its reply read once by :meth:`read`."""

    _replies: Callable[[], list[Any]]
    _parse: Callable[[list[Any]], Start]
    _failed: Callable[[BaseException], None]

    def read(self) -> Start:
        """Wait for the reply and return the start (raises what Redis raised)."""
        try:
            replies = self._replies()
        except Exception as exc:
            self._failed(exc)
            raise
        return self._parse(replies)


def read_replies(
    pool: Any, connection: Any, count: int, *, within: Sequence[float] = ()
) -> list[Any]:
    """Read ``count`` replies from ``connection`` (an error reply as its exception) and
    give the connection back; one that failed midway is closed first. ``within``: how
    long each of the first replies may take (a peer gone silent, as after a failover
    without a reset, must not hold the reader until TCP keepalive notices)."""
    replies: list[Any] = []
    try:
        for index in range(count):
            if index < len(within) and not connection.can_read(timeout=within[index]):
                raise RedisTimeoutError("Redis did not answer in time")
            try:
                replies.append(connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return replies


def _starts(replies: Sequence[Any]) -> list[Start]:
    """Parse the start script's reply: five values per request."""
    return [
        Start(
            leased=code == 1,
            attempt=int(attempt),
            stored=stored or None,
            foreign=code == 2,
            ended=code == 3,
            cancelled=code == 4,
            batch_id=_text(batch) if batch else None,
            callback=_text(callback) if callback else None,
        )
        for code, attempt, stored, batch, callback in zip(
            replies[::5],
            replies[1::5],
            replies[2::5],
            replies[3::5],
            replies[4::5],
            strict=True,
        )
    ]


def next_attempt(redis: Any, request_id: str) -> int:
    """Count one more attempt by the execution that holds the lease; return its number."""
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(record_key(request_id), Field.ATTEMPTS, 1)
    pipe.hset(record_key(request_id), Field.LAST_STARTED_AT, now_iso())
    attempt, _ = pipe.execute()
    return int(attempt)


def mark_retrying(redis: Any, request_id: str) -> None:
    """Note when a retry was scheduled: Celery's RETRY state carries no timestamp."""
    redis.hset(record_key(request_id), Field.LAST_RETRY_AT, now_iso())


class Cancel(enum.IntEnum):
    """What cancelling a request found (:data:`_CANCEL`'s codes)."""

    UNKNOWN = 0  # never submitted, or expired
    CANCELLED = 1  # cancelled now: it never runs
    ALREADY = 2  # cancelled before
    RUNNING = 3  # an execution holds its lease: it finishes, then reads as it ended
    ENDED = 4  # its final outcome is stored


# KEYS: per request, three: lease, record, stored result ('' when results live in
# another Redis). ARGV: now. Marks each request that is neither running nor ended as
# cancelled, in one step with those checks, so no execution can start it in between
# (the start script refuses a cancelled request). Returns per request: a
# :class:`Cancel` code, its batch ID (or false), its callback URL, its own or its
# batch's (or false), and its operation's task name (or false).
_CANCEL = lua(
    """
local final = {SUCCESS = true, FAILURE = true, REVOKED = true}
local out = {}
for i = 1, #KEYS, 3 do
  local code = 1
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    code = 0
  elseif redis.call('HEXISTS', KEYS[i + 1], $cancelled_at) == 1 then
    code = 2
  else
    local stored = false
    if KEYS[i + 2] ~= '' then stored = redis.call('GET', KEYS[i + 2]) end
    if stored then
      local ok, meta = pcall(cjson.decode, stored)
      if ok and type(meta) == 'table' and final[meta.status] == true then code = 4 end
    end
    if code == 1 and redis.call('EXISTS', KEYS[i]) == 1 then code = 3 end
    if code == 1 then redis.call('HSET', KEYS[i + 1], $cancelled_at, ARGV[1]) end
  end
"""
    + _BATCH_AND_CALLBACK
    + """  out[#out + 1] = code
  out[#out + 1] = batch
  out[#out + 1] = callback
  out[#out + 1] = redis.call('HGET', KEYS[i + 1], $operation)
end
return out
"""
)


@dataclass(frozen=True)
class Cancelling:
    """One request's answer to a cancel: what was found, and where its end is told."""

    request_id: str
    found: Cancel
    batch_id: str | None = None
    callback: str | None = None
    operation: str | None = None  # its task name


def cancel_many(
    redis: Any, requests: Sequence[tuple[str, bytes | str | None]], *, at: str
) -> list[Cancelling]:
    """Cancel each request (ID, result key or None) that has not started, in one trip."""
    keys: list[Any] = []
    for request_id, result_key in requests:
        keys += [lease_key(request_id), record_key(request_id), result_key or ""]
    replies = redis.register_script(_CANCEL)(keys=keys, args=[at]) if keys else []
    return [
        Cancelling(
            request_id=request_id,
            found=Cancel(int(code)),
            batch_id=_text(batch) if batch else None,
            callback=_text(callback) if callback else None,
            operation=_text(operation) if operation else None,
        )
        for (request_id, _), code, batch, callback, operation in zip(
            requests, replies[::4], replies[1::4], replies[2::4], replies[3::4], strict=True
        )
    ]
