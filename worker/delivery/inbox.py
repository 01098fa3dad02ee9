"""Inboxes left by earlier workers: returned to their lanes, so an upgrade loses nothing.

Workers of earlier eksops versions took a message by moving it (``BLMOVE``) from the
queue into an inbox of their own, then claiming it; they registered each inbox in a
sorted set scored by their last heartbeat. Workers now take messages from the lanes
directly (``worker.delivery.lanes``: pop and record in one script), so no inbox is
written any more; but a message an earlier worker moved and had not claimed when it
was stopped is still in its inbox. Every sweep (kombu's periodic restore) returns the
items of inboxes not heard from for a minute (or the visibility timeout, if shorter)
to their lanes, and forgets empty inboxes silent for long. The return is a watched
transaction: an earlier worker still claiming from its inbox and the sweep never both
deliver one item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Sorted set of every inbox, scored by its consumer's last heartbeat (broker time).
REGISTRY = "_eksops.inboxes"
#: An inbox is abandoned after this much silence, or the visibility timeout if shorter.
ABANDONED_AFTER_SECONDS = 60.0
#: An empty inbox silent this many times the abandonment delay leaves the registry.
FORGOTTEN_AFTER_ABANDONED = 10


def broker_time(client: Any) -> float:
    """Return the broker's clock, in seconds."""
    seconds, microseconds = client.time()
    return float(seconds) + float(microseconds) / 1_000_000


def abandonment_delay(visibility_timeout: float) -> float:
    """How long an inbox's consumer may be silent before its inbox is returned."""
    return min(ABANDONED_AFTER_SECONDS, visibility_timeout)


Restore = Callable[[bytes, Any], None]


def return_items(
    client: Any,
    inbox: str,
    restore: Restore,
    *,
    silent_since: float | None = None,
    forget_before: float | None = None,
) -> int:
    """Return every item of ``inbox`` to its lane; the number returned.

    With ``silent_since`` (broker time), only if the inbox's consumer has not been heard
    from since then; an inbox that is also empty, and silent since before
    ``forget_before``, leaves the registry. ``restore(item, pipe)`` queues the commands
    that put one item back. The inbox is watched, so a claim racing with this return
    makes it start again: each item is claimed or returned, never both.
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


def sweep(client: Any, restore: Restore, *, abandoned_after: float) -> int:
    """Return every abandoned inbox's items to their lanes; the count."""
    returned = 0
    now = broker_time(client)
    silent_since = now - abandoned_after
    forget_before = now - abandoned_after * FORGOTTEN_AFTER_ABANDONED
    for member in client.zrangebyscore(REGISTRY, "-inf", silent_since):
        inbox = member.decode() if isinstance(member, bytes) else str(member)
        count = return_items(
            client, inbox, restore, silent_since=silent_since, forget_before=forget_before
        )
        if count:
            logger.warning(
                "Returned %d message(s) from the abandoned inbox %s to their lanes", count, inbox
            )
        returned += count
    return returned
