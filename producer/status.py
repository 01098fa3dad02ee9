"""Read a request's status: Celery's result meta plus the eksops request record.

Maps Celery states onto the states callers see (queued, started, retrying, succeeded,
failed, unknown), rebuilds the structured error of a failure, and tells a never
submitted (or expired) ID apart from a queued one: only submitted IDs have a record.
Reads Redis only: polling a finished request never reaches Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from celery import states

import worker.errors  # noqa: F401 - Celery rebuilds stored errors from sys.modules
from worker.contracts import ErrorInfo, RequestState, RequestStatus
from worker.errors import EksOpsError
from worker.records import read_record

_STATE_BY_CELERY = {
    states.PENDING: RequestState.QUEUED,
    states.RECEIVED: RequestState.QUEUED,
    states.STARTED: RequestState.STARTED,
    states.RETRY: RequestState.RETRYING,
    states.SUCCESS: RequestState.SUCCEEDED,
    states.FAILURE: RequestState.FAILED,
    states.REVOKED: RequestState.FAILED,
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


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _running_again(record: Mapping[str, str], meta: Mapping[str, Any]) -> bool:
    """Return whether the worker started (again) after the last stored state."""
    started = record.get("last_started_at")
    if not started:
        return False
    stored_at = _iso(meta.get("date_done"))
    if stored_at is None:
        return True
    return datetime.fromisoformat(started) > datetime.fromisoformat(stored_at)


def combine(request_id: str, record: Mapping[str, str], meta: Mapping[str, Any]) -> RequestStatus:
    """Build the caller's view from the request record and the Celery result meta."""
    celery_state = meta.get("status", states.PENDING)
    state = _STATE_BY_CELERY.get(celery_state, RequestState.QUEUED)
    if celery_state == states.PENDING and not record:
        state = RequestState.UNKNOWN
    elif celery_state in (states.PENDING, states.RETRY) and _running_again(record, meta):
        # Workers record their start in the request record, not in the result meta.
        state = RequestState.STARTED
    result = meta.get("result")
    fields: dict[str, Any] = {}
    if state is RequestState.SUCCEEDED:
        fields["result"] = result if isinstance(result, dict) else {"value": result}
    elif state is RequestState.FAILED or celery_state == states.RETRY:
        fields["error"] = error_info(result)
    finished = state in (RequestState.SUCCEEDED, RequestState.FAILED)
    return RequestStatus(
        request_id=request_id,
        state=state,
        operation=record.get("operation") or meta.get("name"),
        submitted_at=record.get("submitted_at"),
        started_at=record.get("started_at"),
        finished_at=_iso(meta.get("date_done")) if finished else None,
        attempts=int(record.get("attempts") or 0),
        **fields,
    )


def read_status(*, redis: Any, backend: Any, request_id: str) -> RequestStatus:
    """Return the status of ``request_id`` from the broker Redis and the result backend."""
    record = read_record(redis, request_id)
    meta = backend.get_task_meta(request_id)
    return combine(request_id, record, meta)
