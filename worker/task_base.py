"""What every single-request task does around its operation, written once.

:class:`OperationTask` binds the request ID to the log context and starts the
execution (``worker.executions``: the request's lease and attempt count, also how
pollers learn it started, with no extra result-backend write). A repeated delivery of a
request that already ended is answered with its stored outcome (no second API call).
Around the operation it applies the retry policy: transient errors are retried with
backoff, permanent ones fail at once, unexpected exceptions become a structured
internal error.
"""

from __future__ import annotations

import logging
from typing import Any

import celery
from celery import states
from celery.exceptions import Ignore

from worker.contracts import Operation
from worker.dispatch import execute
from worker.errors import EksOpsError, PermanentError, TransientError
from worker.executions import INFRASTRUCTURE_ERRORS, Execution, begin, until_redis_answers
from worker.logs import bound_request
from worker.records import mark_retrying
from worker.retries import log_failure, log_giving_up, log_retry
from worker.runtime import runtime

logger = logging.getLogger(__name__)


class OperationTask(celery.Task):  # type: ignore[type-arg]
    """Base class of the five operation tasks."""

    abstract = True
    # "started" comes from the request record; the tracer's STARTED write would cost a
    # round trip and overwrite a stored SUCCESS before the repeat check reads it.
    track_started = False
    # Expected failures: Celery logs them in one line instead of "raised unexpected"
    # with a traceback; our own ERROR line already says what failed and why.
    throws = (PermanentError,)

    @property
    def request_id(self) -> str:
        """Return the ID of the request being run (the Celery task ID)."""
        return str(self.request.id)

    @property
    def attempt(self) -> int:
        """Return which execution of this request is running (redeliveries included)."""
        return int(getattr(self.request, "eksops_attempt", 1))

    def execute(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run this task's operation for the current request: the body of every task."""
        operation = Operation.from_task_name(self.name)
        return execute(operation, arguments, request_id=self.request_id, attempt=self.attempt)

    def __call__(self, *args: Any, **arguments: Any) -> Any:
        request_id = self.request_id
        with bound_request(request_id):
            if self.request.called_directly:
                return self.run(*args, **arguments)
            holder = runtime().leases.new_holder()
            return until_redis_answers(
                lambda: self._once(request_id, holder, args, arguments), doing="running the request"
            )

    def _once(
        self, request_id: str, holder: str, args: tuple[Any, ...], arguments: dict[str, Any]
    ) -> Any:
        execution = begin(
            self.backend, request_id, operation=self.name, message_id=request_id, holder=holder
        )
        if execution.foreign:
            logger.info("Request belongs to another message; leaving it to that one")
            raise Ignore  # store nothing under this ID
        if execution.outcome is not None:
            return self._repeat(execution.outcome)
        return self._run(args, arguments, execution)

    def _run(self, args: tuple[Any, ...], arguments: dict[str, Any], execution: Execution) -> Any:
        # The task object is shared by all pool threads; the request context is not.
        self.request.eksops_attempt = execution.attempt  # type: ignore[attr-defined]
        try:
            result = self.run(*args, **arguments)
        except TransientError as exc:
            execution.release()
            raise self._retry_or_fail(exc) from exc
        except EksOpsError as exc:
            execution.done()
            log_failure(logger, self.name, exc)
            raise
        except INFRASTRUCTURE_ERRORS:
            raise  # not the request's outcome: until_redis_answers starts over
        except Exception as exc:
            execution.done()
            logger.exception("%s failed unexpectedly", self.name)
            raise EksOpsError(f"Internal error: {type(exc).__name__}: {exc}") from exc
        execution.done()
        return result

    def _repeat(self, meta: dict[str, Any]) -> Any:
        """Answer a repeated delivery with the request's stored outcome."""
        result = meta.get("result")
        if meta.get("status") == states.SUCCESS:
            logger.info("Request already succeeded; returning the stored result")
            return result
        logger.info("Request already failed; returning the stored error")
        if isinstance(result, BaseException):
            raise result
        raise EksOpsError(f"Request already failed: {result}")

    def _retry_or_fail(self, exc: TransientError) -> BaseException:
        policy = runtime().policy
        retries = self.request.retries
        if retries >= policy.max_retries:
            log_giving_up(logger, self.name, retries + 1, exc)
            return exc
        countdown = policy.countdown(retries, exc.retry_after)
        mark_retrying(runtime().redis, self.request_id)
        log_retry(logger, retries + 1, policy, exc, countdown)
        retry: BaseException = self.retry(
            exc=exc, countdown=countdown, max_retries=policy.max_retries, throw=False
        )
        return retry
