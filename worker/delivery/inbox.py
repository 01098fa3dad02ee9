"""Each consumer's inbox: how a message leaves the queue without a window to lose it.

kombu's Redis transport pops a message (``BRPOP``) and then records it as unacknowledged
in a second write; a worker killed between the two loses the message, which is then in
neither place. Here the worker moves it instead (``BLMOVE``, atomic) from the queue into
a list of its own, its inbox, and then *claims* it: one script takes it out of the inbox
and writes kombu's unacknowledged record (index and payload) in a single step. At every
instant a message is in the queue, in an inbox, or recorded as unacknowledged; kombu's
visibility timeout already returns the last kind to the queue.

What can be left in an inbox is a message moved there by a consumer that died before it
could claim it, or whose claim failed because the broker went away. Consumers register
their inbox in a sorted set scored by the broker's clock at their last heartbeat. Every
sweep (kombu's periodic restore) returns a consumer's own inbox at once, and the items
of inboxes not heard from for a minute (or the visibility timeout, if shorter) to their
queues. A sweep can take an item from a live
consumer that has moved it but not yet claimed it; that consumer's claim then finds
nothing and delivers nothing. The claim is the only way to a delivery, so no item is
delivered twice from one move.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.delivery.envelope import LUA_ENVELOPE

logger = logging.getLogger(__name__)

#: Sorted set of every inbox, scored by its consumer's last heartbeat (broker time).
REGISTRY = "_eksops.inboxes"
#: A consumer renews its heartbeat at least this often while it polls (and every sweep),
#: and at least four times within the silence that marks it abandoned.
HEARTBEAT_SECONDS = 10.0
#: An inbox is abandoned after this much silence, or the visibility timeout if shorter.
#: Guessing wrong costs nothing but a return: the claim decides who delivers.
ABANDONED_AFTER_SECONDS = 60.0
#: An empty inbox silent this many times the abandonment delay leaves the registry (its
#: consumer, if alive after all, registers it again before its next move).
FORGOTTEN_AFTER_ABANDONED = 10

# KEYS: source list, unacked index, unacked payloads. ARGV: the time to index it at.
# Returns nothing when the source is empty, else {item, delivery tag or false}: the tag
# when the item was recorded as unacknowledged, false when it does not have the shape
# of a kombu envelope (the caller drops it, or delivers it unrecorded: kombu's own path).
# The record is kombu's own format, [payload, exchange, routing key], with the payload
# embedded verbatim, not re-encoded.
_CLAIM = (
    LUA_ENVELOPE
    + """
local item = redis.call('RPOP', KEYS[1])
if not item then return false end
local message, info, tag = envelope(item)
if not message then return {item, false} end
redis.call('ZADD', KEYS[2], ARGV[1], tag)
redis.call('HSET', KEYS[3], tag,
  '[' .. item .. ',' .. cjson.encode(info.exchange) .. ',' .. cjson.encode(info.routing_key) .. ']')
return {item, tag}
"""
)

# KEYS: the registry. ARGV: the inbox. Scored by the broker's clock, so the consumers'
# clocks never have to agree.
_HEARTBEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(now[2]) / 1000000, ARGV[1])
return 1
"""


_scripts: dict[str, Any] = {}


def _run(client: Any, script: str, keys: list[str], args: list[Any]) -> Any:
    """Run ``script`` through redis-py's Script (by digest, loaded on first use)."""
    runner = _scripts.get(script) or _scripts.setdefault(script, client.register_script(script))
    return runner(keys=keys, args=args, client=client)


def consumer_name() -> str:
    """Return this process's consumer name: host, process ID and a random suffix."""
    return _consumer_of(os.getpid())  # a forked child is a consumer of its own


@functools.cache
def _consumer_of(pid: int) -> str:
    return f"{socket.gethostname()}.{pid}.{uuid.uuid4().hex[:8]}"


def broker_time(client: Any) -> float:
    """Return the broker's clock, in seconds."""
    seconds, microseconds = client.time()
    return float(seconds) + float(microseconds) / 1_000_000


def abandonment_delay(visibility_timeout: float) -> float:
    """How long an inbox's consumer may be silent before its inbox is returned."""
    return min(ABANDONED_AFTER_SECONDS, visibility_timeout)


@dataclass(frozen=True)
class Claimed:
    """An item taken from an inbox: its bytes, and its delivery tag if it was recorded."""

    item: bytes
    tag: str | None


class Inbox:
    """One consumer's inbox for one queue: ``queue`` is the list, ``source`` its name."""

    def __init__(
        self, queue: str, *, source: str, abandoned_after: float, consumer: str | None = None
    ) -> None:
        self.queue = queue
        self.source = source
        self.abandoned_after = abandoned_after
        self.key = f"_eksops.inbox.{consumer or consumer_name()}.{queue}"
        self._heard_at = float("-inf")

    def heartbeat_due(self) -> bool:
        every = min(HEARTBEAT_SECONDS, self.abandoned_after / 4)
        return time.monotonic() - self._heard_at >= every

    def heartbeat(self, client: Any) -> None:
        """Register this inbox, or tell the registry its consumer is alive."""
        _run(client, _HEARTBEAT, [REGISTRY], [self.key])
        self._heard_at = time.monotonic()

    def move_command(self, timeout: float) -> tuple[Any, ...]:
        """The blocking command that moves the next message of the queue here."""
        return ("BLMOVE", self.queue, self.key, "RIGHT", "LEFT", timeout)

    def claim(self, client: Any, *, unacked_index: str, unacked: str) -> Claimed | None:
        """Take the item moved here and record it as unacknowledged, in one step."""
        return claim(client, self.key, unacked_index=unacked_index, unacked=unacked)


def claim(client: Any, source: str, *, unacked_index: str, unacked: str) -> Claimed | None:
    """Pop the next item of ``source`` and record it as unacknowledged, atomically."""
    found = _run(client, _CLAIM, [source, unacked_index, unacked], [time.time()])
    if not found:
        return None
    item, tag = found
    return Claimed(item=item, tag=tag.decode() if isinstance(tag, bytes) else None)


Restore = Callable[[bytes, Any], None]


def return_items(
    client: Any,
    inbox: str,
    restore: Restore,
    *,
    silent_since: float | None = None,
    forget_before: float | None = None,
) -> int:
    """Return every item of ``inbox`` to its queue; the number returned.

    With ``silent_since`` (broker time), only if the inbox's consumer has not been heard
    from since then; an inbox that is also empty, and silent since before
    ``forget_before``, leaves the registry.
    ``restore(item, pipe)`` queues the commands that put one item back. The inbox is
    watched, so a claim racing with this return makes it start again: each item is
    claimed or returned, never both.
    """
    returned = 0

    def transaction(pipe: Any) -> None:
        nonlocal returned
        items = pipe.lrange(inbox, 0, -1)
        heard_at = pipe.zscore(REGISTRY, inbox) if silent_since is not None else None
        pipe.multi()
        if silent_since is not None and heard_at is not None and heard_at >= silent_since:
            returned = 0
            return
        if items:
            pipe.delete(inbox)
            for item in items:
                restore(item, pipe)
        elif forget_before is not None and heard_at is not None and heard_at < forget_before:
            pipe.zrem(REGISTRY, inbox)
        returned = len(items)

    client.transaction(transaction, inbox)
    return returned


def sweep(client: Any, own: Inbox | None, restore: Restore, *, abandoned_after: float) -> int:
    """Return this consumer's inbox and every abandoned one to their queues; the count."""
    returned = 0
    if own is not None:
        returned += _logged(own.key, return_items(client, own.key, restore), "this consumer's")
        own.heartbeat(client)
    now = broker_time(client)
    silent_since = now - abandoned_after
    forget_before = now - abandoned_after * FORGOTTEN_AFTER_ABANDONED
    for member in client.zrangebyscore(REGISTRY, "-inf", silent_since):
        inbox = member.decode() if isinstance(member, bytes) else str(member)
        if own is not None and inbox == own.key:
            continue
        count = return_items(
            client, inbox, restore, silent_since=silent_since, forget_before=forget_before
        )
        returned += _logged(inbox, count, "an abandoned")
    return returned


def _logged(inbox: str, count: int, whose: str) -> int:
    if count:
        logger.warning("Returned %d message(s) from %s inbox %s to the queue", count, whose, inbox)
    return count
