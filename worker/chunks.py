"""Running a chunk of a bulk submission: many requests, one message.

Celery costs a worker several milliseconds of CPU per message whatever the task does,
more than a Kubernetes call itself; a burst of thousands of Jobs therefore travels in
chunks (see ``producer.enqueue``) and pays that cost once per chunk. Each request
inside keeps everything it has on its own: its ID, request record, lease, attempt
count, result in the backend, log tag and retries. A chunk takes all its requests in
one round trip (so they read ``started`` from then on), then runs them one after the
other; the worker's threads run chunks side by side, so concurrency is unchanged.

Retries of a transient failure happen in place, with the same policy as single
requests (the thread waits: back-pressure on a throttling cluster). A request the
chunk does not own (a duplicate submitted within another message) or that already
ended (a redelivered chunk) is skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import states
from pydantic import ValidationError

from worker.contracts import Chunk, ChunkItem, Operation, explain
from worker.dispatch import execute
from worker.errors import EksOpsError, InvalidRequest, TransientError
from worker.executions import (
    INFRASTRUCTURE_ERRORS,
    Execution,
    begin,
    begin_many,
    store_outcome,
    until_redis_answers,
)
from worker.logs import bound_request
from worker.records import mark_retrying, next_attempt
from worker.runtime import runtime

logger = logging.getLogger(__name__)


def run_chunk(backend: Any, chunk_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run every request of the chunk; return how many ran and how many were skipped."""
    try:
        chunk = Chunk.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidRequest(explain(exc, what="chunk")) from None
    holder = runtime().leases.new_holder()
    # One round trip takes every request of the chunk (the chunk owns them all).
    prepared = until_redis_answers(
        partial(
            begin_many,
            backend,
            [item.request_id for item in chunk.items],
            operation=chunk.operation.task_name,
            message_id=chunk_id,
            holder=holder,
        ),
        doing="starting a chunk",
    )
    ran = 0
    for item, execution in zip(chunk.items, prepared, strict=True):
        with bound_request(item.request_id):
            run = _ItemRun(backend, chunk_id, chunk.operation, item, holder, prepared=execution)
            ran += until_redis_answers(run, doing="running a request of a chunk")
    return {"operation": chunk.operation.value, "requests": len(chunk.items), "ran": ran}


@dataclass
class _ItemRun:
    """One request of a chunk: started with the chunk, or (again, after an outage) alone."""

    backend: Any
    chunk_id: str
    operation: Operation
    item: ChunkItem
    holder: str
    prepared: Execution | None

    def __call__(self) -> bool:
        execution, self.prepared = self.prepared, None  # a second try starts afresh
        if execution is None:
            execution = begin(
                self.backend,
                self.item.request_id,
                operation=self.operation.task_name,
                message_id=self.chunk_id,
                holder=self.holder,
            )
        return _run_item(self.backend, self.operation, self.item, execution)


def _run_item(backend: Any, operation: Operation, item: ChunkItem, execution: Execution) -> bool:
    if execution.foreign:
        logger.info("Request belongs to another message; leaving it to that one")
        return False
    if execution.outcome is not None:
        logger.info("Request already ended (%s); skipping it", execution.outcome.get("status"))
        return False
    try:
        result = _attempts(backend, operation, item, execution)
    except EksOpsError as exc:
        logger.error(
            "%s failed: %s %s: %s", operation.task_name, exc.http_status, exc.code, exc.message
        )
        store_outcome(backend, item.request_id, exc, states.FAILURE)
    except INFRASTRUCTURE_ERRORS:
        raise  # not the request's outcome: until_redis_answers starts over
    except Exception as exc:
        logger.exception("%s failed unexpectedly", operation.task_name)
        internal = EksOpsError(f"Internal error: {type(exc).__name__}: {exc}")
        store_outcome(backend, item.request_id, internal, states.FAILURE)
    else:
        store_outcome(backend, item.request_id, result, states.SUCCESS)
    finally:
        execution.done()
    return True


def _attempts(
    backend: Any, operation: Operation, item: ChunkItem, execution: Execution
) -> dict[str, Any]:
    current = runtime()
    policy = current.policy
    attempt = execution.attempt
    for tries in range(policy.max_attempts):
        try:
            return execute(operation, item.arguments, request_id=item.request_id, attempt=attempt)
        except TransientError as exc:
            if tries + 1 >= policy.max_attempts:
                logger.error(
                    "%s failed after %d attempts, giving up: %s %s: %s",
                    operation.task_name,
                    tries + 1,
                    exc.http_status,
                    exc.code,
                    exc.message,
                )
                raise
            countdown = policy.countdown(tries, exc.retry_after)
            logger.warning(
                "Attempt %d of %d failed: %s %s: %s; retrying in %.2fs",
                tries + 1,
                policy.max_attempts,
                exc.http_status,
                exc.code,
                exc.message,
                countdown,
            )
            mark_retrying(current.redis, item.request_id)
            backend.mark_as_retry(item.request_id, exc)
            time.sleep(countdown)
            attempt = next_attempt(current.redis, item.request_id)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover
