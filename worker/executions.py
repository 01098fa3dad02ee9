"""One execution of one request: start it, or learn it has ended, or that it is not ours.

Starting takes the request's lease and counts the attempt in one Redis round trip for
all the requests of a message (see ``worker.records``); the stored outcome of a request
that already ended comes back in the same trip and answers any repeated delivery
without counting an attempt; a request another live execution is running is waited
for; a request another message owns is left to it. Storing writes the outcome in the
result backend in one write. The engine (``worker.engine``) is the only caller.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import states
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from worker import callbacks, events
from worker.delivery.results import result_write, set_result_meta
from worker.errors import EksOpsError
from worker.leases import LeaseKeeper
from worker.records import (
    Alongside,
    Claim,
    SentStart,
    Start,
    Starter,
    lease_key,
    mark_retrying,
    record_key,
)
from worker.timestamps import now_iso

logger = logging.getLogger(__name__)

_WAIT_SECONDS = 0.5
T = TypeVar("T")

# Redis (broker, records, results) unreachable: the work cannot go on, and it must not
# end as the request's outcome either.
# Celery's BackendError is what its result backend raises once its own retries of a
# connection error are spent (``result_backend_always_retry``).
INFRASTRUCTURE_ERRORS = (RedisError, OSError, OperationalError, BackendError)


def until_redis_answers(
    action: Callable[[], T], *, doing: str, stopping: threading.Event | None = None
) -> T:
    """Run ``action``; while Redis is unreachable, wait and run it again.

    Everything an execution does is idempotent (lease re-entrant for its holder,
    outcome and ownership checked first), so starting over is safe, and it keeps an
    outage from being stored as a request's failure or acking a chunk half done.
    ``stopping``: once set, the last error is raised instead of waiting again (a
    thread that stops with the worker).
    """
    delay = 0.5
    while True:
        try:
            return action()
        except INFRASTRUCTURE_ERRORS as exc:
            if stopping is not None and stopping.is_set():
                raise
            logger.warning(
                "Redis unreachable while %s (%s); trying again in %.1fs", doing, exc, delay
            )
            if stopping is None:
                time.sleep(delay)
            else:
                stopping.wait(delay)
            delay = min(delay * 2, 5.0)


# KEYS: the request's stored result, its record. ARGV: the encoded meta, its expiry in
# seconds (0: none), the event stream, its length bound, the request ID, its batch ID
# ('' if none), how it ended (succeeded | failed), when, its waiters' channel; then the
# record's links, field and value pairs. The store of :meth:`Executions.store` as one
# command: the meta as Celery's Redis backend writes it (SETEX, or SET, then PUBLISH on
# its key), the links, the end on the event stream, the waiters' publish.
_STORE = (
    events.REQUEST_EVENT_LUA
    + """
if ARGV[2] ~= '0' then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
if #ARGV > 9 then redis.call('HSET', KEYS[2], unpack(ARGV, 10)) end
request_event(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
redis.call('PUBLISH', ARGV[9], ARGV[7])
"""
)


@dataclass
class Execution:
    """The right to run a request (``holder`` set), or why there is nothing to run."""

    request_id: str
    attempt: int = 0
    holder: str | None = None
    outcome: dict[str, Any] | None = None  # stored final meta: success or failure
    foreign: bool = False  # another message owns the request
    batch_id: str | None = None
    callback: str | None = None  # where the request's end is POSTed


class Executions:
    """Starts and ends executions: leases, attempts, stored outcomes."""

    def __init__(
        self,
        *,
        starter: Starter,
        leases: LeaseKeeper,
        redis: Any,
        backend: Callable[[], Any],
        shared_redis: bool,
        sender: Any = None,
    ) -> None:
        self.leases = leases
        self._redis = redis
        # Celery's backend is per thread: ask for the calling thread's one each time.
        self._backend = backend
        self._starter = starter
        # Results in the broker's Redis: the start script reads them in the same trip.
        self._shared = shared_redis
        self._store_script = redis.register_script(_STORE)
        # A client of the same Redis whose connections carry starts sent ahead
        # (:meth:`send_begin`): each is held from the send until its reply is read.
        self._sender = sender

    def begin(
        self,
        request_id: str,
        claim: Claim,
        *,
        alongside: Alongside | None = None,
        on_wait: Callable[[], None] | None = None,
        sent: SentStart | None = None,
    ) -> Execution:
        """Start running ``request_id`` as ``claim`` says, or say why not.

        Waits while another live execution holds the lease. ``alongside`` rides on the
        first start's round trip (see ``Starter.start_many``); ``on_wait`` is called
        once, before the first wait (to give back what that trip took). ``sent``: the
        first start was sent already (:meth:`send_begin`, same claim): its reply is
        read instead.
        """
        waiting = False
        while True:
            if sent is not None:
                execution = self._execution(request_id, sent.read(), claim.holder)
                sent = None
            else:
                (execution,) = self.begin_many([request_id], claim, alongside=alongside)
            alongside = None
            if execution is not None:
                return execution
            if not waiting:
                logger.warning("Another worker is running this request; waiting for it to finish")
                waiting = True
                if on_wait is not None:
                    on_wait()
            time.sleep(_WAIT_SECONDS)

    @property
    def sends_ahead(self) -> bool:
        """Whether :meth:`send_begin` can be used: results live in the broker's Redis,
        so a start's one trip finds a stored outcome too."""
        return self._shared and self._sender is not None

    def send_begin(
        self, request_id: str, claim: Claim, *, alongside: Alongside | None = None
    ) -> SentStart:
        """Send the start :meth:`begin` makes first, without waiting for its reply; pass
        what this returns to :meth:`begin` (with the same claim) to read it."""
        if self._sender is None or not self._shared:
            raise RuntimeError("starts are sent ahead only with results in the broker's Redis")
        return self._starter.send(
            self._sender,
            request_id,
            self.backend.get_key_for_task(request_id),
            claim,
            alongside=alongside,
        )

    def after_take(self, note: str, nonce: str, holder: str) -> tuple[Any, ...]:
        """Return the start of the request a take notes (``lanes.TAKE``), as a command to
        send behind the take (``Starter.after_take``); only when :attr:`sends_ahead`."""
        key = self.backend.get_key_for_task("-")  # the prefix, then the ID
        key = key.decode() if isinstance(key, bytes) else str(key)
        return self._starter.after_take(note, nonce, holder, key.removesuffix("-"))

    def taken_start(self, reply: Any) -> SentStart | None:
        """The reply of :meth:`after_take`'s command as a start :meth:`begin` reads."""
        start = self._starter.taken_start(reply)
        if start is None:
            return None
        return SentStart(lambda: [], lambda _replies: start, lambda _exc: None)

    def begin_many(
        self, request_ids: list[str], claim: Claim, *, alongside: Alongside | None = None
    ) -> list[Execution | None]:
        """:meth:`begin` for all the requests of one message, in one round trip.

        ``None`` for a request whose lease another live execution holds (call
        :meth:`begin` for it, which waits).
        """
        ended = {} if self._shared else self._stored_elsewhere(request_ids)
        pending = [rid for rid in request_ids if rid not in ended]
        starts = self._starter.start_many(
            [
                (rid, self.backend.get_key_for_task(rid) if self._shared else None)
                for rid in pending
            ],
            claim,
            alongside=alongside,
        )
        by_id: dict[str, Execution | None] = {
            rid: Execution(rid, outcome=meta) for rid, meta in ended.items()
        }
        for request_id, start in zip(pending, starts, strict=True):
            by_id[request_id] = self._execution(request_id, start, claim.holder)
        return [by_id[rid] for rid in request_ids]

    def _execution(self, request_id: str, start: Start, holder: str) -> Execution | None:
        """What a start found: the right to run (lease held and renewed), why there is
        nothing to run, or None while another live execution holds the lease."""
        meta = dict(self.backend.decode_result(start.stored)) if start.stored else {}
        if start.foreign:
            return Execution(request_id, foreign=True)
        if start.cancelled:  # its REVOKED outcome is (being) stored by the canceller
            return Execution(request_id, outcome={"status": states.REVOKED})
        if start.ended or meta.get("status") in states.READY_STATES:
            if start.leased:  # stored by an execution that just ended
                self.leases.release(lease_key(request_id), holder)
            return Execution(request_id, outcome=meta)
        if start.leased:
            self.leases.hold(lease_key(request_id), holder)
            return Execution(
                request_id,
                attempt=start.attempt,
                holder=holder,
                batch_id=start.batch_id,
                callback=start.callback,
            )
        return None

    @property
    def backend(self) -> Any:
        """Return the calling thread's result backend."""
        return self._backend()

    def _stored_elsewhere(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Final outcomes of ``request_ids`` in a result backend of its own Redis."""
        metas = {rid: dict(self.backend.get_task_meta(rid)) for rid in request_ids}
        return {rid: m for rid, m in metas.items() if m.get("status") in states.READY_STATES}

    def release(self, execution: Execution) -> None:
        """Free the lease now: the request will run again elsewhere."""
        if execution.holder is not None:
            self.leases.release(lease_key(execution.request_id), execution.holder)

    def done(self, execution: Execution) -> None:
        """Stop renewing the lease; the stored outcome answers any later delivery."""
        if execution.holder is not None:
            self.leases.forget(lease_key(execution.request_id), execution.holder)

    def store(
        self,
        execution: Execution,
        outcome: Any,
        state: str,
        *,
        links: Mapping[str, str] | None = None,
    ) -> None:
        """Store a request's outcome, and say so: in one step when results share Redis.

        Beside the outcome: ``links`` into the request record (its Job, say), the
        request's end on the event stream, and a publish its waiters wake on. With
        results in the broker's Redis, all of it is one script call (one reply to read,
        where a pipeline in a transaction has seven); a request with a callback URL
        queues its callback in the same transaction instead.
        """
        request_id = execution.request_id
        ended = "succeeded" if state == states.SUCCESS else "failed"
        if self._shared and not execution.callback:
            key, value, expires = result_write(self.backend, request_id, outcome, state)
            self._store_script(
                keys=[key, record_key(request_id)],
                args=[
                    value,
                    expires,
                    events.STREAM_KEY,
                    events.EVENTS_MAX_LENGTH,
                    request_id,
                    execution.batch_id or "",
                    ended,
                    now_iso(),
                    events.request_channel(request_id),
                    *itertools.chain.from_iterable((links or {}).items()),
                ],
            )
            return

        def also(pipe: Any) -> None:
            if links:
                pipe.hset(record_key(request_id), mapping=dict(links))
            if execution.callback:
                callbacks.enqueue(
                    pipe,
                    kind="request",
                    request_id=request_id,
                    url=execution.callback,
                    details=_outcome_details(outcome, ended),
                )
            events.append_request(
                pipe, request_id=request_id, batch_id=execution.batch_id, state=ended, at=now_iso()
            )
            pipe.publish(events.request_channel(request_id), ended)

        if not set_result_meta(
            self.backend, request_id, outcome, state, also=also if self._shared else None
        ):
            with self._redis.pipeline(transaction=False) as pipe:
                also(pipe)
                pipe.execute()

    def retrying(self, execution: Execution, exc: BaseException) -> None:
        """Say a retry waits: the RETRY state pollers read, its time, the event stream."""
        self.backend.mark_as_retry(execution.request_id, exc)
        with self._redis.pipeline(transaction=False) as pipe:
            mark_retrying(pipe, execution.request_id)
            events.append_request(
                pipe,
                request_id=execution.request_id,
                batch_id=execution.batch_id,
                state="retrying",
                at=now_iso(),
                reason=getattr(exc, "code", type(exc).__name__),
            )
            pipe.execute()


def _outcome_details(outcome: Any, ended: str) -> dict[str, Any]:
    """A request's outcome as its callback says it: the result, or the structured error."""
    if isinstance(outcome, EksOpsError):
        return {
            "state": ended,
            "error": outcome.to_info().model_dump(mode="json", exclude_none=True),
        }
    if isinstance(outcome, BaseException):
        return {"state": ended, "error": {"code": type(outcome).__name__, "message": str(outcome)}}
    return {"state": ended, "result": outcome}
