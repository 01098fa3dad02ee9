"""Read a request's status: Celery's result meta plus the eksops request record.

Maps Celery states onto the states callers see (queued, started, retrying, succeeded,
failed, cancelled, unknown), rebuilds the structured error of a failure, and tells a never
submitted (or expired) ID apart from a queued one: only submitted IDs have a record.
Reads Redis only: polling a finished request never reaches Kubernetes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from celery import states
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

import worker.errors  # noqa: F401 - Celery rebuilds stored errors from sys.modules
from worker.contracts import RequestState, RequestStatus
from worker.delivery.results import decode_result_meta
from worker.errors import Cancelled, EksOpsError, ErrorInfo, QueueUnavailable
from worker.records import RequestRecord, lease_key, read_record, record_key

_STATE_BY_CELERY = {
    states.PENDING: RequestState.QUEUED,
    states.RECEIVED: RequestState.QUEUED,
    states.STARTED: RequestState.STARTED,
    states.RETRY: RequestState.RETRYING,
    states.SUCCESS: RequestState.SUCCEEDED,
    states.FAILURE: RequestState.FAILED,
    states.REVOKED: RequestState.CANCELLED,
    states.REJECTED: RequestState.FAILED,
}


def error_info(exc: object) -> ErrorInfo:
    """Return the structured error of a stored failure, whatever raised it."""
    if isinstance(exc, EksOpsError):
        return exc.to_info()
    if isinstance(exc, BaseException):
        return ErrorInfo(
            code=type(exc).__name__, message=str(exc) or type(exc).__name__, http_status=500
        )
    return ErrorInfo(code="InternalError", message=str(exc), http_status=500)


def cancelled_info(request_id: str, at: str | None) -> ErrorInfo:
    """Return the error a cancelled request reads with."""
    when = f" at {at}" if at else ""
    return Cancelled(f"Request {request_id} was cancelled{when} before it ran").to_info()


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _running_again(record: RequestRecord, meta: Mapping[str, Any]) -> bool:
    """Return whether a worker started (again) after the last stored state."""
    started = record.last_started_at
    if not started:
        return False
    # A RETRY meta has no date_done; the worker records when it scheduled the retry.
    stored_at = record.last_retry_at if meta.get("status") == states.RETRY else None
    if stored_at is None:
        return True
    return datetime.fromisoformat(started) > datetime.fromisoformat(stored_at)


_OUTCOME_UNKNOWN = "OutcomeUnknown"


def _outcome_lost(record: RequestRecord, stale_after: float | None) -> ErrorInfo | None:
    started = record.last_started_at
    if stale_after is None or not started:
        return None
    age = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
    if age < stale_after:
        return None
    return ErrorInfo(
        code=_OUTCOME_UNKNOWN,
        message=(
            f"A worker started this request at {started} and no outcome was stored in the "
            f"{int(age)}s since; it may have run or not. Check the cluster before resubmitting."
        ),
        http_status=504,
    )


def combine(
    request_id: str,
    record: RequestRecord | None,
    meta: Mapping[str, Any],
    *,
    stale_after: float | None = None,
) -> RequestStatus:
    """Build the caller's view from the request record and the Celery result meta.

    A request started more than ``stale_after`` seconds ago with no stored outcome (a
    redelivery would have restarted it long before) reads as ``unknown`` with an
    ``OutcomeUnknown`` error rather than as running forever.
    """
    celery_state = meta.get("status", states.PENDING)
    state = _STATE_BY_CELERY.get(celery_state, RequestState.QUEUED)
    if celery_state == states.PENDING and record is None:
        state = RequestState.UNKNOWN
    record = record or RequestRecord()
    if record.cancelled_at and celery_state not in states.READY_STATES:
        state = RequestState.CANCELLED  # its REVOKED outcome is not stored (yet)
    if (
        state not in (RequestState.UNKNOWN, RequestState.CANCELLED)
        and celery_state in (states.PENDING, states.RETRY)
        and (_running_again(record, meta))
    ):
        # Workers record their start in the request record, not in the result meta.
        state = RequestState.STARTED
    result = meta.get("result")
    fields: dict[str, Any] = {}
    if state is RequestState.STARTED and (lost := _outcome_lost(record, stale_after)):
        state = RequestState.UNKNOWN
        fields["error"] = lost
    if state is RequestState.SUCCEEDED:
        fields["result"] = result if isinstance(result, dict) else {"value": result}
    elif state is RequestState.CANCELLED:
        fields["error"] = cancelled_info(request_id, record.cancelled_at)
    elif (state is RequestState.FAILED or celery_state == states.RETRY) and "error" not in fields:
        fields["error"] = error_info(result)
    finished = state in (RequestState.SUCCEEDED, RequestState.FAILED, RequestState.CANCELLED)
    return RequestStatus(
        request_id=request_id,
        state=state,
        operation=record.operation or meta.get("name"),
        submitted_at=record.submitted_at,
        started_at=record.started_at,
        finished_at=(_iso(meta.get("date_done")) or record.cancelled_at) if finished else None,
        attempts=record.attempts,
        callback_url=record.callback,
        tenant=record.tenant,
        callbacks=record.callbacks,
        **fields,
    )


def read_status(
    *,
    redis: Any,
    backend: Any,
    request_id: str,
    stale_after: float | None = None,
    shared: bool = False,
) -> RequestStatus:
    """Return the status of ``request_id`` from the broker Redis and the result backend.

    ``shared``: the results live in the broker's Redis; the record and the stored
    outcome are then read in one round trip. Raises
    :class:`~worker.errors.QueueUnavailable` when Redis cannot be read: a poller must
    never mistake an unreadable status for an empty or successful one.
    """
    with unreadable(request_id):
        record, meta = read_parts(
            redis=redis, backend=backend, request_id=request_id, shared=shared
        )
        return status_of(redis, request_id, record, meta, stale_after=stale_after)


def read_parts(
    *, redis: Any, backend: Any, request_id: str, shared: bool = False
) -> tuple[RequestRecord | None, Mapping[str, Any]]:
    """Return the request record and the stored result meta (one round trip if ``shared``)."""
    if not shared:
        return read_record(redis, request_id), backend.get_task_meta(request_id)
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(record_key(request_id))
        pipe.get(backend.get_key_for_task(request_id))
        raw_record, raw_meta = pipe.execute()
    return RequestRecord.from_hash(raw_record), decode_result_meta(backend, raw_meta)


def status_of(
    redis: Any,
    request_id: str,
    record: RequestRecord | None,
    meta: Mapping[str, Any],
    *,
    stale_after: float | None = None,
) -> RequestStatus:
    """:func:`combine`, with the one read it may need: a request started long ago but
    still leased is running (a long chunk renews the leases of all its requests), not
    lost. A final ``meta`` needs no read."""
    status = combine(request_id, record, meta, stale_after=stale_after)
    lost = status.error is not None and status.error.code == _OUTCOME_UNKNOWN
    if lost and redis.exists(lease_key(request_id)):
        status = combine(request_id, record, meta)
    return status


@contextlib.contextmanager
def unreadable(request_id: str) -> Iterator[None]:
    """Raise :class:`~worker.errors.QueueUnavailable` for a status Redis cannot give."""
    try:
        yield
    except (RedisError, OSError, OperationalError, BackendError) as exc:
        raise QueueUnavailable(
            f"Cannot read the status of request {request_id}: Redis is unreachable ({exc})"
        ) from exc
