"""The event stream: every request and Job transition, in order, for callers to follow.

One Redis Stream, ``eksops:events``, bounded in length (``EVENTS_MAX_LENGTH``, about
the last hundred thousand transitions). Entries are flat string fields:
``kind`` (``request`` or ``job``), ``request_id``, ``batch_id``, and for a request its
``state`` (``started``, ``retrying``, ``succeeded``, ``failed``), for a Job its record
key (``job``), ``phase``, ``previous`` and ``reason``; ``at`` is the time of the
transition. The job tracker appends Job transitions in the same script that writes
the job record (``worker.jobrecords``); the engine appends request transitions. The
entry ID is the resume point (SSE's ``Last-Event-ID``): readers of
``GET /api/events`` and ``EksOps.events()`` filter by request or batch as they read.
Pure redis-py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

STREAM_KEY = "eksops:events"
#: About how many transitions the stream keeps (XADD MAXLEN ~).
EVENTS_MAX_LENGTH = 100_000
NOTIFY_REQUEST_PREFIX = "eksops:notify:request:"


#: :func:`append_request` in Lua, for the scripts that record a request's transition in
#: the step that makes it (its start, its end): ``request_event(stream, max_length,
#: request_id, batch_id, state, at, ...)``, more field and value pairs after ``at``.
REQUEST_EVENT_LUA = """
local function request_event(stream, max_length, request_id, batch_id, state, at, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', max_length, '*', 'kind', 'request',
    'request_id', request_id, 'batch_id', batch_id, 'state', state, 'at', at, ...)
end
"""


def request_channel(request_id: str) -> str:
    """Return the pub/sub channel a request's end is published on."""
    return NOTIFY_REQUEST_PREFIX + request_id


@dataclass(frozen=True)
class Event:
    """One transition: its stream ID (the resume point) and its fields."""

    id: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.fields.get("kind", "")

    def matches(self, *, request_id: str | None, batch_id: str | None) -> bool:
        """Return whether the event concerns ``request_id`` or ``batch_id`` (all if neither)."""
        if request_id is not None and self.fields.get("request_id") != request_id:
            return False
        return batch_id is None or self.fields.get("batch_id") == batch_id

    def as_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready data (empty fields left out)."""
        return {"id": self.id, **{k: v for k, v in self.fields.items() if v}}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def append_request(
    pipe: Any, *, request_id: str, batch_id: str | None, state: str, at: str, **extra: str
) -> None:
    """Queue the XADD of a request transition on ``pipe`` (or a client)."""
    fields: Mapping[str, str] = {
        "kind": "request",
        "request_id": request_id,
        "batch_id": batch_id or "",
        "state": state,
        "at": at,
        **extra,
    }
    pipe.xadd(STREAM_KEY, dict(fields), maxlen=EVENTS_MAX_LENGTH, approximate=True)


def _start(last: list[Any]) -> str:
    return _text(last[0][0]) if last else "0"


def _matching(
    reply: Any, after: str, *, request_id: str | None, batch_id: str | None
) -> tuple[list[Event], str]:
    events: list[Event] = []
    for _stream, entries in reply or []:
        for entry_id, raw in entries:
            after = _text(entry_id)
            event = Event(after, {_text(k): _text(v) for k, v in raw.items()})
            if event.matches(request_id=request_id, batch_id=batch_id):
                events.append(event)
    return events, after


def read(
    redis: Any,
    *,
    after: str = "$",
    request_id: str | None = None,
    batch_id: str | None = None,
    block_ms: int = 5_000,
    count: int = 500,
) -> tuple[list[Event], str]:
    """Return the events after ``after`` that match, and the ID to read after next.

    ``after`` is a stream ID (``0`` from the start, ``$`` from now). Waits up to
    ``block_ms`` for something new. The returned ID moves on past events that did not
    match too, so a filtered reader never reads them again.
    """
    if after == "$":
        after = _start(redis.xrevrange(STREAM_KEY, count=1))
    reply = redis.xread({STREAM_KEY: after}, count=count, block=block_ms)
    return _matching(reply, after, request_id=request_id, batch_id=batch_id)


async def read_async(
    redis: Any,
    *,
    after: str = "$",
    request_id: str | None = None,
    batch_id: str | None = None,
    block_ms: int = 5_000,
    count: int = 500,
) -> tuple[list[Event], str]:
    """:func:`read` with an asyncio client (the gateway's event streams)."""
    if after == "$":
        after = _start(await redis.xrevrange(STREAM_KEY, count=1))
    reply = await redis.xread({STREAM_KEY: after}, count=count, block=block_ms)
    return _matching(reply, after, request_id=request_id, batch_id=batch_id)


def valid_position(value: str) -> bool:
    """Return whether ``value`` is a stream position a reader may start after."""
    if value in ("$", "0"):
        return True
    milliseconds, _, sequence = value.partition("-")
    return milliseconds.isdigit() and (sequence == "" or sequence.isdigit())


def follow(
    redis: Any,
    *,
    after: str = "$",
    request_id: str | None = None,
    batch_id: str | None = None,
    block_ms: int = 5_000,
) -> Iterator[Event]:
    """Yield matching events as they come, from ``after`` on, forever."""
    while True:
        events, after = read(
            redis, after=after, request_id=request_id, batch_id=batch_id, block_ms=block_ms
        )
        yield from events
