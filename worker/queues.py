"""The backlog as operators see it: per lane, messages waiting, their age, messages held.

One function, :func:`read`, answers ``/health``'s ``queues`` section, ``eksops queue``
and the gateway's queue gauges, in one Redis script and a few cheap reads:

* **waiting**: the length of each lane's list (``worker.delivery.lanes``): the
  interactive list ``eksops`` and every bulk group of the ring, summed as the bulk lane
  (the group count is reported beside it; a group is a batch, never a label);
* **oldest age**: lanes are taken from their right end, so the message at index -1 is
  the next one taken and the oldest waiting; its envelope carries the time it was
  enqueued (``worker.delivery.envelope.ENQUEUED_AT``, the envelope's last property),
  read in place from the message's last bytes, never decoding a chunk's body; a
  message without it (published by an earlier producer) gives no age. The bulk lane's
  age is the oldest of the first :data:`AGED_GROUPS` groups of the ring (the next
  served), so a read stays cheap with thousands of batches waiting;
* **held**: messages taken by workers and not acknowledged yet, from kombu's ``unacked``
  hash (each value ends with the message's routing key, so its lane is read from the
  value's tail) and, for the oldest, kombu's ``unacked_index`` (scored by take time);
* **live workers**: ``worker.presence``.

Ages are measured on Redis's clock against the producer's, so they are as exact as the
hosts' clocks agree (NTP: milliseconds). Pure redis-py; producers and workers read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kombu.transport.redis import Channel

from worker import presence
from worker.contracts import QUEUE
from worker.delivery.envelope import ENQUEUED_AT
from worker.delivery.lanes import BULK, BULK_PREFIX, INTERACTIVE, RING, run_script
from worker.fleet import LimiterState, limited_clusters, read_limiter

#: kombu's keys of the messages workers hold (its Redis channel's defaults; eksops
#: sets no key prefix).
UNACKED = str(Channel.unacked_key)
UNACKED_INDEX = str(Channel.unacked_index_key)
#: How many bulk groups' oldest messages the bulk lane's age is taken from.
AGED_GROUPS = 200
#: The enqueue time is among a message's last bytes (its envelope's last property).
_TAIL_BYTES = 512

# KEYS: the interactive list, the ring, kombu's unacked hash and index.
# Returns {now_ms, interactive {len, enqueued_at|false}, bulk groups, bulk len,
#   bulk oldest enqueued_at|false, held interactive, held bulk, oldest held score|false}.
_READ = f"""
local function stamp(list)
  local item = redis.call('LINDEX', list, -1)
  if not item then return false end
  return string.match(string.sub(item, -{_TAIL_BYTES}), '"{ENQUEUED_AT}":([%d%.]+)') or false
end
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local interactive_len = redis.call('LLEN', KEYS[1])
local interactive_at = stamp(KEYS[1])
local groups = redis.call('LRANGE', KEYS[2], 0, -1)
local bulk_len, bulk_at = 0, false
for index, group in ipairs(groups) do
  local list = '{BULK_PREFIX}' .. group
  bulk_len = bulk_len + redis.call('LLEN', list)
  if index <= {AGED_GROUPS} then
    local at = stamp(list)
    if at and (not bulk_at or tonumber(at) < tonumber(bulk_at)) then bulk_at = at end
  end
end
local held_interactive, held_bulk = 0, 0
for _, value in ipairs(redis.call('HVALS', KEYS[3])) do
  local key = string.match(string.sub(value, -400), ',"([^"]*)"%]$')
  if key and string.sub(key, 1, {len(BULK_PREFIX)}) == '{BULK_PREFIX}' then
    held_bulk = held_bulk + 1
  else
    held_interactive = held_interactive + 1
  end
end
local oldest_held = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
return {{now_ms, interactive_len, interactive_at, #groups, bulk_len, bulk_at,
  held_interactive, held_bulk, oldest_held[2] or false}}
"""


@dataclass(frozen=True)
class Lane:
    """One lane's backlog."""

    lane: str  # interactive | bulk
    waiting: int
    oldest_age_seconds: float | None  # None: nothing waits, or its age is not recorded
    held: int  # taken by a worker, not acknowledged yet
    groups: int | None = None  # bulk groups (batches) with messages waiting


@dataclass(frozen=True)
class Backlog:
    """The queue as of now: its lanes, how long the oldest held message has been held,
    live workers, and each cluster's API limiter."""

    lanes: list[Lane]
    oldest_held_seconds: float | None
    live_workers: int
    clusters: list[LimiterState] = field(default_factory=list)

    def lane(self, name: str) -> Lane:
        """Return the lane called ``name`` (interactive or bulk)."""
        return next(lane for lane in self.lanes if lane.lane == name)

    def as_dict(self) -> dict[str, Any]:
        """Return the backlog as JSON-ready data."""
        return asdict(self)


def _age(now_ms: int, stamp: Any) -> float | None:
    if not stamp:
        return None
    return round(max(0.0, now_ms / 1000 - float(stamp)), 3)


def read(redis: Any, *, limiters: bool = True) -> Backlog:
    """Return the backlog: one script for the lanes, one read per cluster's limiter."""
    reply = run_script(redis, _READ, [QUEUE, RING, UNACKED, UNACKED_INDEX], [])
    now_ms, i_len, i_at, groups, b_len, b_at, i_held, b_held, held_score = reply
    now_ms = int(now_ms)
    oldest_held = None
    if held_score:
        oldest_held = round(max(0.0, now_ms / 1000 - float(held_score)), 3)
    clusters = [read_limiter(redis, c) for c in limited_clusters(redis)] if limiters else []
    return Backlog(
        lanes=[
            Lane(INTERACTIVE, int(i_len), _age(now_ms, i_at), int(i_held)),
            Lane(BULK, int(b_len), _age(now_ms, b_at), int(b_held), groups=int(groups)),
        ],
        oldest_held_seconds=oldest_held,
        live_workers=presence.live(redis),
        clusters=clusters,
    )
