"""What every eksops task does around its operation, written once.

:class:`OperationTask` binds the request ID to the log context, takes the request's
execution lease (``worker.leases``) and counts the attempt in the request record (also
how pollers learn it started: no extra result-backend write), answers a redelivered
request that already ended with its stored outcome (no second API call), and applies
the retry policy:
transient errors are retried with backoff, permanent ones fail at once, unexpected
exceptions become a structured internal error. Task bodies stay one line of parsing
and one operation call.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

import celery
from celery import states
from pydantic import BaseModel, ValidationError

from worker.contracts import explain
from worker.errors import EksOpsError, InvalidRequest, PermanentError, TransientError
from worker.logs import bound_request
from worker.operations import ClusterClient
from worker.records import lease_key, mark_retrying
from worker.runtime import runtime

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)


class OperationTask(celery.Task):  # type: ignore[type-arg]
    """Base class of the five operation tasks."""

    abstract = True
    # "started" comes from the request record written in _start; the tracer's STARTED
    # write would cost a round trip and overwrite a stored SUCCESS before we read it.
    track_started = False
    # Expected failures: Celery logs them in one line instead of "raised unexpected"
    # with a traceback; our own ERROR line already says what failed and why.
    throws = (PermanentError,)

    @property
    def attempt(self) -> int:
        """Return which execution of this request is running (redeliveries included)."""
        return int(getattr(self.request, "eksops_attempt", 1))

    @property
    def request_id(self) -> str:
        """Return the ID of the request being run (the Celery task ID)."""
        return str(self.request.id)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request_id = self.request_id
        with bound_request(request_id):
            if self.request.called_directly:
                return self.run(*args, **kwargs)
            outcome = self._start(request_id)
            if outcome is not None:
                return self._repeat(outcome)
            try:
                return self.run(*args, **kwargs)
            except TransientError as exc:
                raise self._retry_or_fail(exc) from exc
            except EksOpsError as exc:
                logger.error(
                    "%s failed: %s %s: %s", self.name, exc.http_status, exc.code, exc.message
                )
                raise
            except Exception as exc:
                logger.exception("%s failed unexpectedly", self.name)
                raise EksOpsError(f"Internal error: {type(exc).__name__}: {exc}") from exc
            finally:
                runtime().leases.release(lease_key(request_id), self.request.eksops_lease)  # type: ignore[attr-defined]

    def _start(self, request_id: str) -> dict[str, Any] | None:
        """Take the request's lease and count the attempt; or return its final outcome.

        One round trip when results share the broker's Redis. A redelivered message
        of a finished request is answered from Redis, without a second API call; one
        whose request another live worker is running waits for that worker.
        """
        current = runtime()
        shared = current.queue.broker_url == current.queue.result_backend
        result_key = self.backend.get_key_for_task(request_id) if shared else None  # type: ignore[attr-defined]
        holder = current.leases.new_holder()
        waiting = False
        while True:
            start = current.starter.start(
                request_id,
                holder=holder,
                operation=self.name,
                lease_ms=current.leases.ttl_ms,
                ttl_seconds=current.queue.result_expires_seconds,
                result_key=result_key,
            )
            meta = self._stored_meta(request_id, start.stored, shared=shared)
            if meta.get("status") in states.READY_STATES:
                if start.leased:
                    current.leases.release(lease_key(request_id), holder)
                return meta
            if start.leased:
                current.leases.hold(lease_key(request_id), holder)
                # The task object is shared by all pool threads; the request context is not.
                self.request.eksops_attempt = start.attempt  # type: ignore[attr-defined]
                self.request.eksops_lease = holder  # type: ignore[attr-defined]
                return None
            if not waiting:
                logger.warning("Another worker is running this request; waiting for it to finish")
                waiting = True
            time.sleep(0.5)

    def _stored_meta(self, request_id: str, raw: bytes | None, *, shared: bool) -> dict[str, Any]:
        if raw:
            return dict(self.backend.decode_result(raw))
        return {} if shared else dict(self.backend.get_task_meta(request_id))

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
            logger.error(
                "%s failed after %d attempts, giving up: %s %s: %s",
                self.name,
                retries + 1,
                exc.http_status,
                exc.code,
                exc.message,
            )
            return exc
        countdown = policy.countdown(retries, exc.retry_after)
        mark_retrying(runtime().redis, self.request_id)
        logger.warning(
            "Attempt %d of %d failed: %s %s: %s; retrying in %.2fs",
            retries + 1,
            policy.max_attempts,
            exc.http_status,
            exc.code,
            exc.message,
            countdown,
        )
        retry: BaseException = self.retry(
            exc=exc, countdown=countdown, max_retries=policy.max_retries, throw=False
        )
        return retry

    def parse(self, model: type[RequestT], arguments: dict[str, Any]) -> RequestT:
        """Validate task arguments against their contract, as producers did."""
        try:
            return model.model_validate(arguments, context=runtime().settings.limits.as_context())
        except ValidationError as exc:
            raise InvalidRequest(explain(exc, what=f"{self.name} request")) from None

    def cluster(self, ref: Any) -> ClusterClient:
        """Return the client of the request's cluster (default: the worker's)."""
        return runtime().clusters.get(ref)
