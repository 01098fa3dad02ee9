"""Lanes: where a message waits, which one a worker takes next, and what wakes workers.

Two lanes share the workers:

* **interactive**: the list ``eksops`` (:data:`~worker.contracts.QUEUE`), single
  submissions, and anything published to the queue by kombu itself;
* **bulk**: one list per *group*, ``eksops.bulk.<group>``, served round robin through
  a ring of the groups that have messages, each group taking as many turns in a row as
  its weight (a batch's priority, 1 to 10). A group is a batch, or, for a batch
  submitted for a tenant, the tenant (:func:`tenant_group`): the fair share is then
  between tenants, whatever number of batches each submits, and a tenant's batches
  follow one another. A batch submitted after a 50,000-item one is served from its
  first turn, not after it.

A worker takes its next message with :data:`TAKE`, one script that picks the lane
(interactive first; one bulk message after :data:`BULK_AFTER` interactive ones while
bulk waits, so bulk never starves), pops the message *and* records it as
unacknowledged in kombu's own format in the same step: at every instant a message is
in its lane or recorded, with no window to lose it, whatever the lane. A worker whose
bulk share of threads is taken asks for interactive work only.

Workers block on *bells*, not on the lanes: ``eksops.bell`` (interactive) and
``eksops.bulk.bell``, lists of tokens that the enqueue rings and every take keeps
rung while its lane has messages (up to :data:`BELL_TOKENS` tokens). A token is only
a wake-up: losing one (a worker killed between its pop and its take) costs nothing
but that worker's next poll, because a worker that waited a whole poll interval
takes from the lanes anyway. Messages published to ``eksops`` without a bell (by
kombu, say) are found the same way.

A message that comes back (its worker died, its visibility timeout passed, a worker
shut down with it prefetched) goes back to its own lane (:data:`REQUEUE`): its
``delivery_info.routing_key`` names it (``eksops`` or ``eksops.bulk.<group>``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from worker.contracts import QUEUE
from worker.delivery.envelope import LUA_ENVELOPE

INTERACTIVE = "interactive"
BULK = "bulk"
BULK_PREFIX = f"{QUEUE}.bulk."
#: The ring of bulk groups with messages, in serving order.
RING = f"{QUEUE}.bulk.ring"
#: Each group of the ring -> its weight (turns in a row).
WEIGHTS = f"{QUEUE}.bulk.weights"
#: Each group -> turns it has taken since it last moved to the back of the ring.
SERVED = f"{QUEUE}.bulk.served"
#: Interactive takes in a row while bulk waited.
SKIPPED = f"{QUEUE}.bulk.skipped"
INTERACTIVE_BELL = f"{QUEUE}.bell"
BULK_BELL = f"{QUEUE}.bulk.bell"
#: A worker channel's own bell (``worker_bell``), rung when its bulk share frees.
WORKER_BELL_PREFIX = f"{QUEUE}.bell."
#: Per worker process, the messages it took and has not acknowledged (:func:`taken_key`).
TAKEN_PREFIX = f"{QUEUE}.taken."
#: Most tokens a bell holds: enough to wake every idle thread of a small fleet at once.
BELL_TOKENS = 64
#: While bulk waits, one bulk message is taken after this many interactive ones.
BULK_AFTER = 4
MAX_WEIGHT = 10

# Which lanes a take may take from (its second argument).
INTERACTIVE_ONLY, EITHER, BULK_ONLY, NEITHER = "0", "1", "2", "3"


def tenant_group(tenant: str) -> str:
    """Return the bulk group of a tenant's batches (never a batch ID: those are UUIDs)."""
    return f"tenant.{tenant}"


def bulk_list(group: str) -> str:
    """Return the list of a bulk group's messages."""
    return BULK_PREFIX + group


def routing_key(group: str | None) -> str:
    """Return the routing key of a message of ``group``'s lane (None: interactive)."""
    return QUEUE if group is None else bulk_list(group)


def group_of(key: str) -> str | None:
    """Return the bulk group a routing key names (None: the interactive lane)."""
    return key[len(BULK_PREFIX) :] if key.startswith(BULK_PREFIX) else None


@dataclass(frozen=True)
class Keys:
    """The fixed keys every lane script touches, in their KEYS order."""

    interactive: str = QUEUE
    ring: str = RING
    weights: str = WEIGHTS
    served: str = SERVED
    skipped: str = SKIPPED
    interactive_bell: str = INTERACTIVE_BELL
    bulk_bell: str = BULK_BELL

    def as_list(self) -> list[str]:
        return [
            self.interactive,
            self.ring,
            self.weights,
            self.served,
            self.skipped,
            self.interactive_bell,
            self.bulk_bell,
        ]


KEYS = Keys()

# Lua helpers shared by the scripts below and the producer's enqueue (KEYS[1..7] are
# always :class:`Keys`). ``ring(bell, wanted)``: top the bell up to ``wanted`` tokens
# (at most BELL_TOKENS). ``add_bulk(group, weight, messages)``: append messages to a
# group's list, the group to the ring if it was not in it, and ring the bulk bell.
LUA_LANES = f"""
local LANE_KEYS = {{interactive = KEYS[1], ring = KEYS[2], weights = KEYS[3], served = KEYS[4],
  skipped = KEYS[5], interactive_bell = KEYS[6], bulk_bell = KEYS[7]}}
local function ring(bell, wanted)
  local missing = math.min(wanted, {BELL_TOKENS}) - redis.call('LLEN', bell)
  if missing <= 0 then return end
  local tokens = {{}}
  for i = 1, missing do tokens[i] = '1' end
  redis.call('LPUSH', bell, unpack(tokens))
end
local function add_bulk(group, weight, messages)
  redis.call('LPUSH', '{BULK_PREFIX}' .. group, unpack(messages))
  if redis.call('HSETNX', LANE_KEYS.weights, group, weight) == 1 then
    redis.call('RPUSH', LANE_KEYS.ring, group)
  else
    redis.call('HSET', LANE_KEYS.weights, group, weight)
  end
  ring(LANE_KEYS.bulk_bell, #messages)
end
local function add_interactive(messages, leftmost)
  if leftmost then
    redis.call('LPUSH', LANE_KEYS.interactive, unpack(messages))
  else
    redis.call('RPUSH', LANE_KEYS.interactive, unpack(messages))
  end
  ring(LANE_KEYS.interactive_bell, #messages)
end
"""

# KEYS: :class:`Keys`, then kombu's unacked index and unacked hash, then the taker's set
# (:func:`taken_key`; '' for none), then the taker's note ('' for none). ARGV: the time
# to index the message at ('' for the server's clock: a take sent ahead, behind the
# wait for a bell), which lanes it may take from (:data:`INTERACTIVE_ONLY`,
# :data:`EITHER`, :data:`BULK_ONLY`, :data:`NEITHER`), how long the taker's set lives
# (seconds); with a note, its nonce and the tasks a runner may run (space-separated).
# The note, replaced by every take, names the message taken (nonce, delivery tag, task)
# when it is one a runner may run (an interactive message of one of those tasks, its
# own request, no ETA or expiry): a start sent behind the take reads it
# (``records.Starter.after_take``). Returns false when no lane has a message for this
# worker, else {item, delivery tag or false, group or false}: the tag when the item was
# recorded as unacknowledged, false when it does not have the shape of a kombu
# envelope (the caller drops it); the group for a bulk message.
TAKE = (
    LUA_ENVELOPE
    + LUA_LANES
    + f"""
local function forget(group)
  redis.call('LREM', KEYS[2], 1, group)
  redis.call('HDEL', KEYS[3], group)
  redis.call('HDEL', KEYS[4], group)
end
local function take_bulk()
  for _ = 1, redis.call('LLEN', KEYS[2]) do
    local group = redis.call('LINDEX', KEYS[2], 0)
    if not group then return nil end
    local list = '{BULK_PREFIX}' .. group
    local item = redis.call('RPOP', list)
    if item then
      if redis.call('LLEN', list) == 0 then
        forget(group)
      elseif redis.call('HINCRBY', KEYS[4], group, 1)
          >= tonumber(redis.call('HGET', KEYS[3], group) or '1') then
        redis.call('HSET', KEYS[4], group, 0)
        redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
      end
      return item, group
    end
    forget(group)  -- emptied by a cancel: nothing left to serve
  end
  return nil
end
if KEYS[11] ~= '' then redis.call('DEL', KEYS[11]) end
-- First a write Redis refuses when out of memory, before anything is popped: a take
-- that fails does so whole (a message popped and then not recorded would be lost).
redis.call('SETNX', KEYS[5], 0)
local bulk_ok = ARGV[2] == '1' or ARGV[2] == '2'
local interactive_ok = ARGV[2] == '0' or ARGV[2] == '1'
local item, group = nil, nil
local bulk_waits = bulk_ok and redis.call('LLEN', KEYS[2]) > 0
if bulk_waits and (not interactive_ok
    or tonumber(redis.call('GET', KEYS[5]) or '0') >= {BULK_AFTER}) then
  item, group = take_bulk()
end
if item then
  redis.call('SET', KEYS[5], 0)
elseif interactive_ok then
  item = redis.call('RPOP', KEYS[1])
  if item then
    if bulk_waits then redis.call('INCR', KEYS[5]) end
  elseif bulk_ok then
    item, group = take_bulk()
    redis.call('SET', KEYS[5], 0)
  end
end
if not item then return false end
ring(KEYS[6], redis.call('LLEN', KEYS[1]))
if redis.call('LLEN', KEYS[2]) > 0 then ring(KEYS[7], {BELL_TOKENS}) end
local message, info, tag = envelope(item)
if not message then return {{item, false, group or false}} end
local at = ARGV[1]
if at == '' then
  local clock = redis.call('TIME')
  at = clock[1] + clock[2] / 1000000
end
redis.call('ZADD', KEYS[8], at, tag)
redis.call('HSET', KEYS[9], tag,
  '[' .. item .. ',' .. cjson.encode(info.exchange) .. ',' .. cjson.encode(info.routing_key) .. ']')
if KEYS[10] ~= '' then
  redis.call('SADD', KEYS[10], tag)
  redis.call('EXPIRE', KEYS[10], ARGV[3])
end
if KEYS[11] ~= '' and not group then
  local headers = message.headers
  local function absent(value) return value == nil or value == cjson.null or value == '' end
  if type(headers) == 'table' and headers.id == tag and type(headers.task) == 'string'
      and absent(headers.eta) and absent(headers.expires)
      and string.find(' ' .. ARGV[5] .. ' ', ' ' .. headers.task .. ' ', 1, true) then
    redis.call('SET', KEYS[11], cjson.encode({{ARGV[4], tag, headers.task}}), 'PX', 60000)
  end
end
return {{item, tag, group or false}}
"""
)

# KEYS: the unacknowledged index, the unacknowledged messages (as :data:`TAKE` records
# them), the taker's set ('' for none). ARGV: the delivery tag. Forgets a message that
# was acknowledged: kombu's own ack (ZREM and HDEL in a transaction), as one command
# with one reply.
ACK = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if KEYS[3] ~= '' then redis.call('SREM', KEYS[3], ARGV[1]) end
"""

# KEYS: :class:`Keys`. ARGV: the message, its group ('' for interactive), the group's
# weight. Puts a message that came back at the head of its lane (taken next).
REQUEUE = (
    LUA_LANES
    + """
if ARGV[2] == '' then
  add_interactive({ARGV[1]}, false)
else
  local list = '"""
    + BULK_PREFIX
    + """' .. ARGV[2]
  redis.call('RPUSH', list, ARGV[1])
  if redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[3]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[2])
  end
  ring(KEYS[7], 1)
end
return 1
"""
)

# KEYS: :class:`Keys`. ARGV: the group. Drops a bulk group's waiting messages (a batch
# cancelled); returns how many there were.
DROP_GROUP = f"""
local list = '{BULK_PREFIX}' .. ARGV[1]
local waiting = redis.call('LLEN', list)
redis.call('DEL', list)
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return waiting
"""


def worker_bell(channel_id: str) -> str:
    """Return the bell of one worker channel: only it waits on it."""
    return WORKER_BELL_PREFIX + channel_id


def wake(client: Any, bell: str) -> None:
    """Ring a worker channel's own bell once (it expires if the channel is gone)."""
    pipe = client.pipeline(transaction=False)
    pipe.lpush(bell, "1")
    pipe.ltrim(bell, 0, 0)
    pipe.expire(bell, 60)
    pipe.execute()


@dataclass(frozen=True)
class Waiting:
    """Messages waiting in the lanes: the interactive lane's, and each bulk group's."""

    interactive: int
    bulk: dict[str, int]

    @property
    def total(self) -> int:
        return self.interactive + sum(self.bulk.values())


def waiting(redis: Any) -> Waiting:
    """Return how many messages wait in each lane (two round trips)."""
    pipe = redis.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.lrange(RING, 0, -1)
    interactive, ring = pipe.execute()
    groups = [g.decode() if isinstance(g, bytes) else str(g) for g in ring]
    pipe = redis.pipeline(transaction=False)
    for group in groups:
        pipe.llen(bulk_list(group))
    return Waiting(int(interactive), dict(zip(groups, map(int, pipe.execute()), strict=True)))


@dataclass(frozen=True)
class Note:
    """What a take notes of the message it took, for a start sent behind it (see
    :data:`TAKE`): the note's key, this take's nonce, the tasks a runner may run."""

    key: str
    nonce: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Taken:
    """A message taken from a lane: its bytes, its delivery tag if it was recorded (an
    item without an envelope's shape is not), and its bulk group (None: interactive)."""

    item: bytes
    tag: str | None
    group: str | None = None


_scripts: dict[str, Any] = {}


def run_script(client: Any, script: str, keys: list[str], args: list[Any]) -> Any:
    """Run ``script`` on ``client`` (or a pipeline) by digest, loaded on first use."""
    runner = _scripts.get(script) or _scripts.setdefault(script, client.register_script(script))
    return runner(keys=keys, args=args, client=client)


def take(
    client: Any,
    *,
    bulk: bool,
    unacked_index: str,
    unacked: str,
    taker: str = "",
    taker_ttl: int = 0,
    interactive: bool = True,
) -> Taken | None:
    """Take the next message for this worker and record it as unacknowledged, atomically.

    ``bulk``: whether this worker may take a bulk message (its bulk share of threads
    is not full); ``interactive``: whether it may take an interactive one (not when its
    process's interactive runners are free to). ``taker``: the taking process's set
    (:func:`taken_key`), which records the message too, for ``taker_ttl`` seconds.
    None when no lane has a message for it.
    """
    keys = _take_keys(unacked_index, unacked, taker)
    args = [time.time(), _lanes(bulk=bulk, interactive=interactive), taker_ttl]
    return taken(run_script(client, TAKE, keys, args))


def _lanes(*, bulk: bool, interactive: bool) -> str:
    """The lanes a take may take from (:data:`NEITHER`: a wait for the worker's own bell
    only, the take behind it takes nothing)."""
    if bulk:
        return EITHER if interactive else BULK_ONLY
    return INTERACTIVE_ONLY if interactive else NEITHER


def ack(client: Any, tag: str, *, unacked_index: str, unacked: str, taker: str = "") -> None:
    """Forget the acknowledged message ``tag`` (what :func:`take` recorded of it)."""
    run_script(client, ACK, [unacked_index, unacked, taker], [tag])


def taken_key(taker: str) -> str:
    """Return the set of the messages the process named ``taker`` took and has not acked.

    A take that Redis ran but never answered (it stopped right after) leaves its message
    there and in the unacknowledged index, and in no worker's hands: the taking process
    finds it there when it reconnects and returns it to its lane (``worker.delivery.
    transport``), instead of it waiting for the visibility timeout.
    """
    return f"{TAKEN_PREFIX}{taker}"


def _take_keys(unacked_index: str, unacked: str, taker: str = "", note: str = "") -> list[str]:
    return [*KEYS.as_list(), unacked_index, unacked, taker, note]


#: The digest :data:`TAKE` is known by once loaded (``EVALSHA``).
TAKE_SHA = hashlib.sha1(TAKE.encode(), usedforsecurity=False).hexdigest()


def take_command(
    *,
    bulk: bool,
    unacked_index: str,
    unacked: str,
    taker: str = "",
    taker_ttl: int = 0,
    interactive: bool = True,
    note: Note | None = None,
) -> tuple[Any, ...]:
    """Return :func:`take` as a command to send behind a wait for a bell, on the same
    connection: Redis runs it the moment the wait ends (a blocked client's next command
    waits for it), so waking and taking cost one round trip. Read its reply with
    :func:`taken`; ``NOSCRIPT`` if Redis has not loaded the script yet (run :func:`take`)."""
    keys = _take_keys(unacked_index, unacked, taker, note.key if note else "")
    mode = _lanes(bulk=bulk, interactive=interactive)
    noted = [note.nonce, " ".join(note.tasks)] if note else []
    return ("EVALSHA", TAKE_SHA, len(keys), *keys, "", mode, taker_ttl, *noted)


def taken(found: Any) -> Taken | None:
    """Return the reply of :data:`TAKE` as a :class:`Taken` (None: nothing to take)."""
    if not found:
        return None
    item, tag, group = found
    return Taken(
        item=item,
        tag=tag.decode() if isinstance(tag, bytes) else None,
        group=group.decode() if isinstance(group, bytes) else None,
    )


def requeue(client: Any, message: bytes | str, routing: str, weight: int) -> None:
    """Put a message that came back at the head of the lane ``routing`` names."""
    group = group_of(routing)
    run_script(client, REQUEUE, KEYS.as_list(), [message, group or "", max(1, weight)])


def drop_group(client: Any, group: str) -> int:
    """Drop a bulk group's waiting messages (a cancelled batch); return how many."""
    return int(run_script(client, DROP_GROUP, KEYS.as_list(), [group]))
