"""The Celery tasks: one per operation of ``worker.catalog``, and one for chunks.

Thin on purpose: a task hands its request(s) to the process's engine
(``worker.engine``), which starts, runs, retries and stores each request the same way
whatever carried it. An operation task's request ID is its task ID and its arguments
are its keyword arguments; it stores nothing itself (the engine stored the outcome)
and ends as the request did, so Celery's events and log lines tell the truth: a failed
request is a failed task. A chunk carries many requests of one operation; each
request is its own task in Flower (``worker.taskevents``), and the chunk's own task
ends as its requests did: SUCCESS with its tally when every request it ran succeeded
(or was already done), FAILURE (:class:`~worker.errors.ChunkFailed`, its message
counting succeeded, failed and skipped) when any failed. A chunk is never retried
either way: each request's outcome is already stored.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import celery
from celery import states
from celery.concurrency import thread
from celery.exceptions import Ignore
from celery.worker import state as worker_state
from celery.worker import strategy
from pydantic import ValidationError

from worker.catalog import CATALOG, Spec
from worker.celery_app import app, engine
from worker.contracts import CHUNK_TASK, Chunk, Operation
from worker.delivery import lanes
from worker.delivery.envelope import enqueued_at
from worker.errors import ChunkFailed, EksOpsError, InvalidRequest, PermanentError
from worker.validation import explain

logger = logging.getLogger(__name__)


def sending_starts(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy for an operation task, which also sends the request's
    start as it hands the message over (``Engine.sending_start``).

    Only on the threads pool, for a message of the interactive lane that runs at once
    (no ETA, no expiry, not revoked through Celery's control), on a worker that
    prefetches one message per thread (so a message received has a thread to run it
    now). Anything unexpected leaves the start to the run.
    """
    handle = strategy.default(task, app, consumer, **options)
    operation = Operation.from_task_name(task.name)
    # Its run reads it in this process: a pool thread (a prefork child has an engine of
    # its own, and the solo pool runs the task inside the hand-over).
    ahead = app.conf.worker_prefetch_multiplier == 1 and isinstance(consumer.pool, thread.TaskPool)

    def on_message(message: Any, *args: Any, **kwargs: Any) -> Any:
        with _sending_start(message, operation) if ahead else contextlib.nullcontext():
            return handle(message, *args, **kwargs)

    return on_message


def _sending_start(message: Any, operation: Operation) -> contextlib.AbstractContextManager[None]:
    headers = message.headers or {}
    info = message.delivery_info or {}
    if (
        headers.get("eta")
        or headers.get("expires")
        or headers.get("id") in worker_state.revoked  # Celery drops it without running it
        or _bulk_lane(info)
    ):
        return contextlib.nullcontext()
    try:
        payload = message.payload  # decoded once: Celery's handler reads it next
        arguments = payload[1] if isinstance(payload, list | tuple) and len(payload) > 1 else None
        return engine().sending_start(str(headers["id"]), operation, arguments)
    except Exception as exc:  # the run starts it (and reports what is wrong)
        logger.debug("Not sending a start ahead: %r", exc)
        return contextlib.nullcontext()


class RequestTask(celery.Task):  # type: ignore[type-arg]
    """Base of the operation tasks: the engine stores outcomes, Celery stores nothing."""

    abstract = True
    Strategy = "worker.tasks:sending_starts"
    ignore_result = True  # the envelope says so too (``worker.delivery.envelope``)
    # An error raised past the engine (it stores every outcome it reaches) is still
    # stored, so the request reads as failed, not as running until it is lost.
    store_errors_even_if_ignored = True
    # "started" comes from the request record, written by the engine.
    track_started = False
    # Expected failures: Celery logs them in one line instead of "raised unexpected"
    # with a traceback; the engine's ERROR line already says what failed and why.
    throws = (EksOpsError,)


def _from_bulk(task: Any) -> bool:
    """Whether the message being run came from the bulk lane (its routing key says so)."""
    return _bulk_lane(task.request.delivery_info or {})


def _bulk_lane(delivery_info: dict[str, Any]) -> bool:
    """Whether a message's delivery info names a bulk lane as its routing key."""
    return lanes.group_of(str(delivery_info.get("routing_key") or "")) is not None


def _enqueued_at(task: Any) -> float | None:
    """When the message being run was enqueued (its envelope says; None if it does not)."""
    return enqueued_at(task.request.properties)


def _operation_task(spec: Spec) -> Any:
    def run(self: RequestTask, /, **arguments: Any) -> Any:
        ended = engine().run_one(
            str(self.request.id),
            spec.operation,
            arguments,
            bulk=_from_bulk(self),
            enqueued_at=_enqueued_at(self),
        )
        if ended.state in (states.IGNORED, states.REVOKED):
            # Another message owns the request, or it was cancelled: its outcome is
            # stored already, and not this task's to overwrite.
            raise Ignore
        if ended.state != states.SUCCESS:
            error = ended.outcome
            raise error if isinstance(error, BaseException) else PermanentError(str(error))
        return ended.outcome

    run.__name__ = run.__qualname__ = spec.operation.value
    run.__doc__ = spec.summary
    return app.task(name=spec.task_name, base=RequestTask, bind=True)(run)


TASKS = {operation: _operation_task(spec) for operation, spec in CATALOG.items()}


@app.task(name=CHUNK_TASK, bind=True, track_started=False, throws=(ChunkFailed,))
def chunk(self: Any, /, **arguments: Any) -> dict[str, Any]:
    """Run the requests of one chunk of a bulk submission, one after the other."""
    try:
        carried = Chunk.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidRequest(explain(exc, what="chunk")) from None
    current = engine()
    message_id = str(self.request.id)
    requests = current.requests(message_id, carried.items)
    tally = current.run(
        message_id,
        carried.operation,
        requests,
        bulk=_from_bulk(self),
        enqueued_at=_enqueued_at(self),
    )
    if tally.failed:
        raise ChunkFailed(
            f"{tally.failed} of {tally.requests} {tally.operation} requests failed "
            f"({tally.succeeded} succeeded, {tally.skipped} skipped)"
        )
    return tally.as_result()
