"""API-server protection shared by every worker process and host, through Redis.

Each Kubernetes call first takes a slot from its cluster's limiter: a token bucket
(requests per second with a burst) and a bound on calls in flight, both fleet-wide,
decided atomically by one Lua script on Redis's own clock. A 429 with ``Retry-After``
pauses the whole fleet for that cluster, not just the thread that saw it.

Defaults (50 req/s, burst 100, 32 in flight) keep a fleet well inside what an EKS
standard control plane gives one client at the ``workload-low`` priority level (of
about 600 seats per API server, workload-low holds roughly 245; EKS runs at least two
servers). In-flight slots are leases, renewed while held, that expire, so a killed
worker cannot leak them; callers wait for a slot in line, first come first served.
A request alone in its message asks for its first call's slot in the same round trip
that starts it (:meth:`RedisLimiter.ask_early`, sent by ``worker.records.Starter``):
granted, the call goes without asking; not (a pause, the bucket empty, callers in
line), it asks as every call does, having left nothing in Redis.
If Redis cannot be reached the limiter lets calls through and says so, and does not
ask Redis again for a few seconds: the cluster work must not stop, or crawl, because
its guard is unavailable.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from worker import metrics
from worker.fleet import limiter_keys

logger = logging.getLogger(__name__)

#: Whether the calls of this thread are bulk work (set by the engine for a request of
#: the bulk lane): bulk work never takes the interactive reserve of the budget.
BULK_WORK: contextvars.ContextVar[bool] = contextvars.ContextVar("eksops_bulk_work", default=False)

#: A slot granted to this context ahead of its call (see :meth:`RedisLimiter.ask_early`):
#: the limiter that granted it and the holder; the next ``slot()`` there uses it.
_EARLY: contextvars.ContextVar[tuple[RedisLimiter, str] | None] = contextvars.ContextVar(
    "eksops_early_slot", default=None
)

#: Reads the reply of an early ask queued on a pipeline (or the error it got instead).
ReadReply = Callable[[Any], None]

# After Redis failed, calls pass unthrottled for this long before asking it again.
_BYPASS_SECONDS = 5.0

# Waiting for an in-flight slot: the first in line asks again after this long, the
# n-th after n times this, up to the cap, so a full fleet does not spin on Redis.
_LINE_STEP_SECONDS = 0.002
_LINE_MAX_SECONDS = 0.05
# Longest sleep between two asks (a pause or an empty bucket), so a caller keeps its
# place in the line.
_ASK_AGAIN_MAX_SECONDS = 1.0
# The background thread frees ended slots this long after the first of them ended: the
# caller's next step (storing the outcome) reaches Redis first, and the slots of calls
# ending together are freed by one command.
_FREE_AFTER_SECONDS = 0.002

# KEYS: bucket hash, pause key, in-flight zset, line zset (holder -> ticket), line
# heartbeats zset (holder -> ms), ticket counter, and the bulk line and its heartbeats.
# ARGV: rate/s (0 = none), burst, max in flight (0 = none), lease ms, holder, '1' for
# bulk work, the tokens and the in-flight slots bulk work must leave (the interactive
# reserve), '1' for a try that never joins the line (an early ask, see ask_early).
# Then the holders of this process's slots whose calls have ended, freed first, whatever
# the answer (their release rides on this call instead of a round trip of its own).
# Returns 0 when the slot is granted; > 0, the milliseconds to wait before asking again
# (a pause, or the token bucket); < 0, -n: every slot is taken and n callers come first.
# Callers wait for slots in line, first come first served, so none starves: a caller
# joins the line when the slots are taken, and is served only once fewer callers are
# ahead of it than slots are free. Bulk work has a line of its own and sees the
# reserve as taken, so a burst never takes the last of the budget: interactive callers
# are served from it, ahead of any bulk caller. A caller that stops asking (its worker
# died, or Redis failed and it went ahead unthrottled) leaves the line after two
# seconds; a caller in line asks again at least every second (_ASK_AGAIN_MAX_SECONDS).
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 10, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
-- Granted already (this ask sent again after its reply was lost): still granted.
if redis.call('ZSCORE', KEYS[3], ARGV[5]) then return 0 end
-- An early ask that is only for a call to come if KEYS[9] exists (a take's note).
if KEYS[9] and redis.call('EXISTS', KEYS[9]) == 0 then return 1 end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local limit = tonumber(ARGV[3])
local holder = ARGV[5]
local bulk = ARGV[6] == '1'
local line, seen = KEYS[4], KEYS[5]
if bulk then line, seen = KEYS[7], KEYS[8] end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, pair in ipairs({{KEYS[4], KEYS[5]}, {KEYS[7], KEYS[8]}}) do
    local gone = redis.call('ZRANGEBYSCORE', pair[2], '-inf', now - 2000)
    for _, waiter in ipairs(gone) do
      redis.call('ZREM', pair[1], waiter)
      redis.call('ZREM', pair[2], waiter)
    end
  end
  local free = limit - redis.call('ZCARD', KEYS[3])
  if bulk then
    -- Interactive callers waiting come first; and the reserve is theirs.
    free = free - redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[8])
  end
  local ahead = redis.call('ZRANK', line, holder)
  if not ahead then ahead = redis.call('ZCARD', line) end
  if ahead >= free then
    if ARGV[9] == '1' then return -(math.max(0, ahead - free) + 1) end
    if not redis.call('ZSCORE', line, holder) then
      redis.call('ZADD', line, redis.call('INCR', KEYS[6]), holder)
    end
    redis.call('ZADD', seen, now, holder)
    for _, key in ipairs({line, seen, KEYS[6]}) do redis.call('PEXPIRE', key, 60000) end
    return -(math.max(0, ahead - free) + 1)
  end
end
local rate = tonumber(ARGV[1])
if rate > 0 then
  local burst = tonumber(ARGV[2])
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local last = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + (now - last) * rate / 1000)
  local needed = 1
  if bulk then needed = 1 + tonumber(ARGV[7]) end
  if tokens < needed then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now,
      'rate', ARGV[1], 'burst', ARGV[2])
    if limit > 0 then redis.call('ZADD', seen, 'XX', now, holder) end
    return math.max(1, math.ceil((needed - tokens) * 1000 / rate))
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now,
    'rate', ARGV[1], 'burst', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
end
if limit > 0 then
  redis.call('ZREM', line, holder)
  redis.call('ZREM', seen, holder)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), holder)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]) + 60000)
end
return 0
"""

# KEYS: bucket hash, in-flight zset. ARGV: burst, the holder. An early slot whose call
# never came: its token goes back to the bucket (never above the burst), its slot is
# freed.
_GIVE_BACK = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then
  redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 0
"""

# KEYS: in-flight zset. ARGV: lease ms, then the holders to renew. Only slots still
# held are extended: one that lapsed and was reaped is not taken back.
_RENEW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease + 60000)
return 0
"""

# KEYS: pause key. ARGV: pause ms. Only ever lengthens a pause.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""


class Limiter(Protocol):
    """What a cluster client needs from a limiter."""

    def slot(self) -> contextlib.AbstractContextManager[None]:
        """Hold a slot for one API call."""

    def pause(self, seconds: float) -> None:
        """Stop every worker from calling this cluster for ``seconds``."""

    def ask_early(self, pipe: Any, *, only_if: str | None = None) -> ReadReply | None:
        """Queue on ``pipe`` a try for the next call's slot; None when nothing is asked.
        ``only_if``: a key; the try asks only if it exists when Redis runs it."""


class Unlimited:
    """A limiter that never waits (limits switched off)."""

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Grant at once."""
        yield

    def pause(self, seconds: float) -> None:
        """Nothing to pause."""

    def ask_early(self, pipe: Any, *, only_if: str | None = None) -> ReadReply | None:
        """Nothing to ask: every call is granted at once."""
        return None


def release_early() -> None:
    """Give back the early slot of this context if its call never came (the request
    did not run, waits for another worker's lease, or failed before calling the
    cluster): its token and its in-flight slot."""
    early = _EARLY.get()
    if early is not None:
        _EARLY.set(None)
        limiter, holder = early
        limiter._unused(holder)


@dataclass(frozen=True)
class Limits:
    """Fleet-wide limits of one cluster."""

    rate_per_second: float
    burst: int
    max_in_flight: int
    lease_seconds: float
    # The share of the tokens and in-flight slots that bulk work leaves to interactive.
    interactive_share: float = 0.0

    @property
    def reserved_tokens(self) -> float:
        return self.burst * self.interactive_share

    @property
    def reserved_slots(self) -> int:
        return int(self.max_in_flight * self.interactive_share)

    @property
    def enabled(self) -> bool:
        """Return whether any limit applies."""
        return self.rate_per_second > 0 or self.max_in_flight > 0


class RedisLimiter:
    """One cluster's fleet-wide limiter."""

    def __init__(
        self,
        client: Any,
        cluster: str,
        limits: Limits,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._limits = limits
        self._cluster = cluster
        self._keys = limiter_keys(cluster)
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)
        self._renew = client.register_script(_RENEW)
        self._give_back = client.register_script(_GIVE_BACK)
        self._sleep = sleep
        self._warned_at = 0.0
        self._bypass_until = 0.0
        self._lock = threading.Lock()
        self._held: set[str] = set()
        # Slots whose calls ended, not yet freed in Redis: the next acquire frees them
        # (whatever it answers), or the background thread does at once (``_woken``).
        self._ended: set[str] = set()
        self._woken = threading.Event()
        self._renewer: threading.Thread | None = None
        self.waited_seconds = 0.0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a token and an in-flight slot; free the slot afterwards.

        A held slot is renewed in the background, so a call slowed by connect retries
        or a token mint keeps it; the lease only bounds how long a dead worker's slots
        stay taken. The slot is freed off the caller's path: by this process's next
        acquire, which carries it, or by the background thread, woken at once (it lets
        the caller's next write go first); the caller returns with the API's answer
        without one more round trip.
        """
        early = _EARLY.get()
        if early is not None and early[0] is self:  # granted with the request's start
            _EARLY.set(None)
            holder, granted = early[1], self._limits.max_in_flight > 0
            metrics.LIMITER_WAIT.labels(metrics.lane(BULK_WORK.get())).observe(0.0)
        else:
            holder = uuid.uuid4().hex
            asked = time.monotonic()
            granted = self._wait_for_slot(holder) and self._limits.max_in_flight > 0
            waited = time.monotonic() - asked
            metrics.LIMITER_WAIT.labels(metrics.lane(BULK_WORK.get())).observe(waited)
            if granted:
                self._hold(holder)
        try:
            yield
        finally:
            if granted:
                self._end(holder)

    def ask_early(self, pipe: Any, *, only_if: str | None = None) -> ReadReply | None:
        """Queue on ``pipe`` a try for the slot of this context's next call; return what
        reads its reply.

        The request's start sends it in the same round trip as its own script, so a
        call granted at once costs no trip of its own. The try never joins the line: if
        no slot is free (a pause, an empty bucket, callers waiting), it leaves nothing
        in Redis, and the call asks as usual. A granted slot is held (renewed) until the
        call uses it, or :func:`release_early` gives it back. ``only_if``: a key that
        must exist when Redis runs the try (a take's note: the start sent behind a take
        asks only if the take took a request to run), else it asks nothing.
        """
        if time.monotonic() < self._bypass_until:
            return None
        holder = uuid.uuid4().hex
        # Slots ended ride on the ask (no trip of their own). Behind a runner's take
        # (``only_if``) that is when the take's wait ends: at once when work waits; when
        # none does, up to a poll interval later, the slot held from the fleet meanwhile
        # (a trip of their own after each request measured slower: docs/performance.md).
        ended = self._take_ended()
        keys = self._keys if only_if is None else [*self._keys, only_if]
        pipe.execute_command(
            "EVALSHA", self._acquire.sha, len(keys), *keys, *self._args(holder, "1"), *ended
        )

        def read(reply: Any) -> None:
            if isinstance(reply, Exception):  # NOSCRIPT, or Redis failed: ask as usual
                # A reply lost with its connection may have granted the slot: freed too
                # (freeing a slot never granted is a no-op); its token, if any, is spent.
                lost = [holder] if self._limits.max_in_flight > 0 else []
                self._free_later([*ended, *lost])
                self._woken.set()
                return
            if int(reply) != 0:
                return
            release_early()  # one early slot per context: an earlier one unused goes back
            _EARLY.set((self, holder))  # rate only: no slot to hold, the token is the call's
            if self._limits.max_in_flight > 0:
                self._hold(holder)

        return read

    def _unused(self, holder: str) -> None:
        """Give back an early slot no call used: its token and its in-flight slot."""
        if self._limits.rate_per_second <= 0:  # no token to give back: free the slot
            if self._limits.max_in_flight > 0:
                self._end(holder)
            return
        with self._lock:
            self._held.discard(holder)
        try:
            self._give_back(keys=[self._keys[0], self._keys[2]], args=[self._limits.burst, holder])
        except redis.RedisError as exc:  # its lease frees the slot; the token is spent
            logger.debug("Could not give back an unused slot: %s", exc)
            if self._limits.max_in_flight > 0:
                self._free_later([holder])

    def _end(self, holder: str) -> None:
        """The call of slot ``holder`` ended: free it off the caller's path."""
        with self._lock:
            self._held.discard(holder)
            self._ended.add(holder)
        self._woken.set()

    def pause(self, seconds: float) -> None:
        """Pause every worker's calls to this cluster for ``seconds`` (a 429)."""
        milliseconds = max(1, int(seconds * 1000))
        if time.monotonic() < self._bypass_until:
            return
        try:
            self._pause(keys=[self._keys[1]], args=[milliseconds])
        except redis.RedisError as exc:
            self._warn(exc)
            return
        metrics.FLEET_PAUSES.labels(self._cluster).inc()
        logger.warning("Cluster asked to slow down: all workers pause for %.2fs", seconds)

    def _take_ended(self) -> list[str]:
        with self._lock:
            ended, self._ended = sorted(self._ended), set()
        return ended

    def _args(self, holder: str, try_only: str) -> list[Any]:
        limits = self._limits
        return [
            limits.rate_per_second,
            limits.burst,
            limits.max_in_flight,
            int(limits.lease_seconds * 1000),
            holder,
            "1" if BULK_WORK.get() else "0",
            limits.reserved_tokens,
            limits.reserved_slots,
            try_only,
        ]

    def _wait_for_slot(self, holder: str) -> bool:
        args = self._args(holder, "0")
        while True:
            if time.monotonic() < self._bypass_until:
                return False
            ended = self._take_ended()
            try:
                wait_ms = int(self._acquire(keys=self._keys, args=[*args, *ended]))
            except redis.RedisError as exc:
                self._free_later(ended)
                self._warn(exc)
                return False
            if wait_ms == 0:
                return True
            if wait_ms < 0:  # in line for a slot, -wait_ms callers first
                delay = min(_LINE_MAX_SECONDS, _LINE_STEP_SECONDS * -wait_ms)
            else:
                delay = min(_ASK_AGAIN_MAX_SECONDS, wait_ms / 1000)
            # Jitter spreads the waiters so they do not all ask again at once.
            delay *= 1 + random.random() / 4  # noqa: S311 - not security
            self.waited_seconds += delay
            self._sleep(delay)

    def _hold(self, holder: str) -> None:
        with self._lock:
            self._held.add(holder)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_held, name="eksops-limiter", daemon=True
                )
                self._renewer.start()

    def _free_later(self, ended: list[str]) -> None:
        with self._lock:
            self._ended.update(ended)

    def _renew_held(self) -> None:
        """Free the slots of ended calls as soon as they end; renew the held ones."""
        lease_ms = int(self._limits.lease_seconds * 1000)
        every = self._limits.lease_seconds / 3
        renew_at = time.monotonic() + every
        while True:
            if self._woken.wait(max(0.0, renew_at - time.monotonic())):
                time.sleep(_FREE_AFTER_SECONDS)
            self._woken.clear()
            ended = self._take_ended()
            if ended:
                try:
                    self._client.zrem(self._keys[2], *ended)
                except redis.RedisError as exc:  # their leases end them anyway
                    logger.debug("Could not free %d in-flight slot(s): %s", len(ended), exc)
            if time.monotonic() < renew_at:
                continue
            renew_at = time.monotonic() + every
            with self._lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                self._renew(keys=[self._keys[2]], args=[lease_ms, *held])
            except redis.RedisError as exc:
                logger.debug("Could not renew %d in-flight slot(s): %s", len(held), exc)

    def _warn(self, exc: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            self._bypass_until = now + _BYPASS_SECONDS
            if now - self._warned_at < 60:
                return
            self._warned_at = now
        logger.warning("API rate limiter unavailable (%s); calling the cluster unthrottled", exc)
