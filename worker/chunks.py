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
from worker.names import NameError_, normalise_request_id
from worker.records import mark_retrying, next_attempt
from worker.retries import log_failure, log_giving_up, log_retry
from worker.runtime import runtime

logger = logging.getLogger(__name__)


def run_chunk(backend: Any, chunk_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run every request of the chunk; return how many ran and how many were skipped."""
    try:
        chunk = Chunk.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidRequest(explain(exc, what="chunk")) from None
    requests = _requests(chunk_id, chunk.items)
    holder = runtime().leases.new_holder()
    # One round trip takes every request of the chunk (the chunk owns them all).
    prepared = until_redis_answers(
        partial(
            begin_many,
            backend,
            [request.request_id for request in requests],
            operation=chunk.operation.task_name,
            message_id=chunk_id,
            holder=holder,
        ),
        doing="starting a chunk",
    )
    ran = 0
    for request, execution in zip(requests, prepared, strict=True):
        with bound_request(request.request_id):
            run = _ItemRun(backend, chunk_id, chunk.operation, request, holder, prepared=execution)
            ran += until_redis_answers(run, doing="running a request of a chunk")
    return {"operation": chunk.operation.value, "requests": len(chunk.items), "ran": ran}


@dataclass(frozen=True)
class _Request:
    """One request of a chunk: its arguments, or why they cannot be run."""

    request_id: str
    item: ChunkItem | None
    invalid: InvalidRequest | None = None


def _requests(chunk_id: str, raw_items: list[Any]) -> list[_Request]:
    """Validate the chunk's requests one by one, each request ID once.

    A malformed request fails on its own (stored as its outcome when it has a usable ID,
    logged and dropped when not) instead of stranding the rest of the chunk; a request
    ID repeated inside the chunk runs once, like a duplicate anywhere else.
    """
    requests: list[_Request] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_items, start=1):
        try:
            request = _Request((item := ChunkItem.model_validate(raw)).request_id, item)
        except ValidationError as exc:
            problem = InvalidRequest(explain(exc, what=f"request {index} of chunk {chunk_id}"))
            request_id = _request_id_of(raw)
            if request_id is None:
                logger.error("%s; it has no usable request ID and is dropped", problem.message)
                continue
            request = _Request(request_id, None, problem)
        if request.request_id in seen:
            with bound_request(request.request_id):
                logger.warning("Request %d repeats a request ID of this chunk; it runs once", index)
            continue
        seen.add(request.request_id)
        requests.append(request)
    return requests


def _request_id_of(raw: Any) -> str | None:
    """Return the request ID of a malformed chunk item, if it has a valid one."""
    value = raw.get("request_id") if isinstance(raw, dict) else None
    try:
        return normalise_request_id(value) if isinstance(value, str) else None
    except NameError_:
        return None


@dataclass
class _ItemRun:
    """One request of a chunk: started with the chunk, or (again, after an outage) alone."""

    backend: Any
    chunk_id: str
    operation: Operation
    request: _Request
    holder: str
    prepared: Execution | None

    def __call__(self) -> bool:
        execution, self.prepared = self.prepared, None  # a second try starts afresh
        if execution is None:
            execution = begin(
                self.backend,
                self.request.request_id,
                operation=self.operation.task_name,
                message_id=self.chunk_id,
                holder=self.holder,
            )
        return _run_item(self.backend, self.operation, self.request, execution)


def _run_item(backend: Any, operation: Operation, request: _Request, execution: Execution) -> bool:
    if execution.foreign:
        logger.info("Request belongs to another message; leaving it to that one")
        return False
    if execution.outcome is not None:
        logger.info("Request already ended (%s); skipping it", execution.outcome.get("status"))
        return False
    try:
        outcome, state = _outcome(backend, operation, request, execution)
        # Once the cluster has answered, only the write is repeated through an outage:
        # running the request again would count another attempt and could read its
        # own first effect (a delete finding nothing) as a different outcome.
        until_redis_answers(
            partial(store_outcome, backend, request.request_id, outcome, state),
            doing="storing a request's outcome",
        )
    finally:
        execution.done()
    return True


def _outcome(
    backend: Any, operation: Operation, request: _Request, execution: Execution
) -> tuple[Any, str]:
    """Run the request (retrying in place); return its outcome and Celery state."""
    if request.invalid is not None:
        logger.error("%s failed: %s", operation.task_name, request.invalid.message)
        return request.invalid, states.FAILURE
    assert request.item is not None  # a request is either valid or invalid
    try:
        return _attempts(backend, operation, request.item, execution), states.SUCCESS
    except EksOpsError as exc:
        log_failure(logger, operation.task_name, exc)
        return exc, states.FAILURE
    except INFRASTRUCTURE_ERRORS:
        raise  # not the request's outcome: until_redis_answers starts over
    except Exception as exc:
        logger.exception("%s failed unexpectedly", operation.task_name)
        return EksOpsError(f"Internal error: {type(exc).__name__}: {exc}"), states.FAILURE


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
                log_giving_up(logger, operation.task_name, tries + 1, exc)
                raise
            countdown = policy.countdown(tries, exc.retry_after)
            log_retry(logger, tries + 1, policy, exc, countdown)
            mark_retrying(current.redis, item.request_id)
            backend.mark_as_retry(item.request_id, exc)
            time.sleep(countdown)
            attempt = next_attempt(current.redis, item.request_id)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover
