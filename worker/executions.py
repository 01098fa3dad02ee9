"""One execution of one request: start it, or learn it is done, or that it is not ours.

Shared by the two kinds of message a worker runs: a request's own message
(``worker.task_base``) and a chunk of a bulk submission (``worker.chunks``). Starting
takes the request's lease and counts the attempt in one Redis round trip (see
``worker.records``); the stored outcome of a request that already ended comes back in
the same trip and answers any repeated delivery; a request another live execution is
running is waited for; a request another message owns is left to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import states
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from worker.records import lease_key
from worker.runtime import runtime

logger = logging.getLogger(__name__)

_WAIT_SECONDS = 0.5
T = TypeVar("T")


@dataclass
class Execution:
    """The right to run a request (``holder`` set), or why there is nothing to run."""

    request_id: str
    attempt: int = 0
    holder: str | None = None
    outcome: dict[str, Any] | None = None  # stored final meta: success or failure
    foreign: bool = False  # another message owns the request

    def release(self) -> None:
        """Free the lease now (the request will run again: a retry)."""
        if self.holder is not None:
            runtime().leases.release(lease_key(self.request_id), self.holder)

    def done(self) -> None:
        """Stop renewing the lease; the stored outcome answers any later delivery."""
        if self.holder is not None:
            runtime().leases.forget(lease_key(self.request_id), self.holder)


# Redis (broker, records, results) unreachable: the work cannot go on, and it must not
# end as the request's outcome either.
# Celery's BackendError is what its result backend raises once its own retries of a
# connection error are spent (``result_backend_always_retry``).
INFRASTRUCTURE_ERRORS = (RedisError, OSError, OperationalError, BackendError)


def until_redis_answers(action: Callable[[], T], *, doing: str) -> T:
    """Run ``action``; while Redis is unreachable, wait and run it again.

    Everything an execution does is idempotent (lease re-entrant for its holder,
    outcome and ownership checked first), so starting over is safe, and it keeps an
    outage from being stored as a request's failure or acking a chunk half done.
    """
    delay = 0.5
    while True:
        try:
            return action()
        except INFRASTRUCTURE_ERRORS as exc:
            logger.warning(
                "Redis unreachable while %s (%s); trying again in %.1fs", doing, exc, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def begin(
    backend: Any, request_id: str, *, operation: str, message_id: str, holder: str
) -> Execution:
    """Start running ``request_id`` for message ``message_id``, or say why not.

    ``holder`` names this execution; starting again with the same holder keeps the
    lease it already has. Waits while another live execution holds the lease.
    """
    waiting = False
    while True:
        (execution,) = begin_many(
            backend, [request_id], operation=operation, message_id=message_id, holder=holder
        )
        if execution is not None:
            return execution
        if not waiting:
            logger.warning("Another worker is running this request; waiting for it to finish")
            waiting = True
        time.sleep(_WAIT_SECONDS)


def begin_many(
    backend: Any, request_ids: list[str], *, operation: str, message_id: str, holder: str
) -> list[Execution | None]:
    """:func:`begin` for all the requests of one message, in one round trip.

    ``None`` for a request whose lease another live execution holds (call
    :func:`begin` for it, which waits).
    """
    current = runtime()
    shared = current.queue.broker_url == current.queue.result_backend
    starts = current.starter.start_many(
        [(rid, backend.get_key_for_task(rid) if shared else None) for rid in request_ids],
        holder=holder,
        operation=operation,
        lease_ms=current.leases.ttl_ms,
        ttl_seconds=current.queue.result_expires_seconds,
        message_id=message_id,
    )
    # Every read first: an outage part-way leaves no lease held (renewed) by this
    # process, only leases that expire; starting again with the same holder is safe.
    metas = [
        stored_meta(backend, request_id, start.stored, shared=shared)
        for request_id, start in zip(request_ids, starts, strict=True)
    ]
    executions: list[Execution | None] = []
    for request_id, start, meta in zip(request_ids, starts, metas, strict=True):
        if meta.get("status") in states.READY_STATES:
            if start.leased:
                current.leases.release(lease_key(request_id), holder)
            executions.append(Execution(request_id, outcome=meta))
        elif start.foreign:
            executions.append(Execution(request_id, foreign=True))
        elif start.leased:
            current.leases.hold(lease_key(request_id), holder)
            executions.append(Execution(request_id, attempt=start.attempt, holder=holder))
        else:
            executions.append(None)
    return executions


def stored_meta(
    backend: Any, request_id: str, raw: bytes | None, *, shared: bool
) -> dict[str, Any]:
    """Return the result meta stored for ``request_id`` (empty if none)."""
    if raw:
        return dict(backend.decode_result(raw))
    return {} if shared else dict(backend.get_task_meta(request_id))


def store_outcome(backend: Any, request_id: str, outcome: Any, state: str) -> None:
    """Store a request's outcome in the result backend in one write.

    The same meta Celery stores (state, result or serialised error, ``date_done``), but
    without Celery's read-before-write: that read guards against overwriting a stored
    success, and the execution calling this holds the request's lease and found no
    outcome when it started, so the guard would cost a round trip and change nothing.
    """
    encoded = backend.encode_result(outcome, state)  # an error becomes its JSON form
    meta = backend._get_result_meta(result=encoded, state=state, traceback=None, request=None)
    meta["task_id"] = request_id
    backend._set_with_state(backend.get_key_for_task(request_id), backend.encode(meta), state)
