"""HTTP answers for failures: a failed request's error as the seed API answered it.

The worker stores every failure as an :class:`~worker.contracts.ErrorInfo` (code,
message, http_status, details). :func:`seed_failure` is the one place that turns it
into the status code and ``{"detail": ...}`` text the synchronous seed API gave, so
callers written against the seed keep working. Where the seed is silent the choice is
the closest HTTP meaning, and the structured error always travels beside ``detail``
under ``error`` (an extra key; ``detail`` keeps the seed's text).

Mapping, checked in this order (``operation``: the seed endpoint; "Kubernetes": an answer
of the Kubernetes API, recognised by the ``reason`` the worker keeps in ``details``):

================================================  =====  ===================================
failure                                           HTTP   ``detail``
================================================  =====  ===================================
ClusterNotFound, the body named ``cluster``       404    ``EKS cluster not found: ...``
ClusterNotFound, the worker's own cluster         500    ``Internal server error: <message>``
ProtectedNamespace / UnmanagedNamespace (worker)  403    the worker's message
OutcomeUnknown (started, no outcome stored)       504    the message (check before resubmitting)
Kubernetes 404, get/delete job                    404    ``Job X not found in namespace Y``
Kubernetes 404, delete namespace                  404    ``Namespace X not found``
Kubernetes 400 / 409 / 422 (caller can fix)       same   the Kubernetes message
Kubernetes, any other (401, 403, 429, 5xx...)     500    ``Kubernetes API error: <Reason>``
BadRequest (the worker's contract check)          422    the message (names the field)
anything else (NoCredentials, TLSError, AWS...)   500    ``Internal server error: <message>``
================================================  =====  ===================================

``<Reason>`` is the HTTP reason phrase, as the seed's ``ApiException.reason`` was
(``Forbidden``, ``Not Found``, ``Too Many Requests``). Seed texts: 404 job (Scenario 3),
``Kubernetes API error: Forbidden`` (Scenario 1), ``Internal server error: Unable to
locate credentials...`` (Scenario 2). Where the seed is silent: a policy refusal by the
worker is the caller's 403, and a conflict or an object the API rejects as invalid keeps
its own status (409, 422, 400) with the Kubernetes message, since the caller can fix it
and a 500 would invite a useless retry.

Errors of the gateway itself: invalid input 422 (nothing enqueued), body too large 413,
missing or wrong API key 401, outside the tenant's scope or against its Job policy 403
(the detail names the scope or the field), over a tenant quota 429 with
``Retry-After``, a request ID reused for another operation 409, Redis unreachable 503.
Every body is ``{"detail": "<one sentence>"}``.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from producer.batches import BatchInterrupted, BatchSubmission
from worker.catalog import Spec
from worker.errors import (
    Cancelled,
    Conflict,
    EksOpsError,
    ErrorInfo,
    Forbidden,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RequestIdReused,
    Unavailable,
)
from worker.validation import describe

logger = logging.getLogger(__name__)

# Kubernetes answers whose message tells the caller what to change in the request.
_CALLER_FIXABLE = (400, 409, 422)
_WORKER_REFUSALS = ("ProtectedNamespace", "UnmanagedNamespace")


@dataclass(frozen=True)
class SeedFailure:
    """The HTTP answer to a failed request, and what the route logs about it."""

    status_code: int
    detail: str
    error: ErrorInfo

    @property
    def from_kubernetes(self) -> bool:
        """Return whether the Kubernetes API itself refused the request."""
        return is_kubernetes_error(self.error)

    def log_text(self, doing: str) -> str:
        """Return the seed's route log line, e.g. ``Kubernetes API error creating job: ...``."""
        error = self.error
        if self.from_kubernetes:
            phrase = _phrase(error.http_status)
            return (
                f"Kubernetes API error {doing}: ({error.http_status}) "
                f"Reason: {phrase}: {error.message}"
            )
        return f"Error {doing}: {error.code}: {error.message}"


def is_kubernetes_error(error: ErrorInfo) -> bool:
    """Return whether ``error`` is a Kubernetes API answer (not AWS, transport or policy).

    The worker's translation keeps the Kubernetes ``Status`` reason in ``details``;
    AWS errors carry ``aws_error_code`` instead, and the worker's own refusals neither.
    """
    details = error.details or {}
    return "reason" in details and "aws_error_code" not in details


def seed_failure(spec: Spec, arguments: Mapping[str, Any], error: ErrorInfo) -> SeedFailure:
    """Return the status code and ``detail`` the seed API gave for ``error``."""
    arguments = spec.with_defaults(arguments)

    def answer(status_code: int, detail: str) -> SeedFailure:
        return SeedFailure(status_code=status_code, detail=detail, error=error)

    if error.code == "ClusterNotFound":
        if arguments.get("cluster"):
            return answer(404, error.message)
        return answer(500, f"Internal server error: {error.message}")
    if error.code in _WORKER_REFUSALS:
        return answer(403, error.message)
    if error.code == "OutcomeUnknown":
        return answer(504, error.message)
    if error.code == Cancelled.default_code:
        return answer(409, error.message)
    if is_kubernetes_error(error):
        status = error.http_status
        if status == 404 and spec.seed.not_found:
            return answer(404, spec.seed.not_found.format_map(arguments))
        if status in _CALLER_FIXABLE:
            return answer(status, error.message)
        return answer(500, f"Kubernetes API error: {_phrase(status)}")
    if error.code == InvalidRequest.default_code:
        return answer(422, error.message)
    return answer(500, f"Internal server error: {error.message}")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def error_body(
    detail: str,
    *,
    request_id: str | None = None,
    error: ErrorInfo | None = None,
    submission: BatchSubmission | None = None,
) -> dict[str, Any]:
    """Return the JSON body of an error answer: ``detail`` first, extras only when known."""
    body: dict[str, Any] = {"detail": detail}
    if request_id is not None:
        body["request_id"] = request_id
    if error is not None:
        body["error"] = error.model_dump(mode="json", exclude_none=True)
    if submission is not None:
        body["submission"] = submission.model_dump(mode="json")
    return body


def describe_validation(exc: RequestValidationError) -> str:
    """Return FastAPI's parameter errors as one sentence naming each field.

    The wording of :mod:`worker.validation`, as for the contracts, so a bad query
    parameter and a bad body field read alike (the location drops FastAPI's ``query.``).
    """
    errors = [{**item, "loc": tuple(item.get("loc", ())[1:]) or ("body",)} for item in exc.errors()]
    return "Invalid request: " + describe(errors)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequest)
    logger.warning("Rejected request: %s", exc.message)
    request.state.refused = exc.code
    return JSONResponse(error_body(exc.message), status_code=422)


async def _invalid_parameters(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = describe_validation(exc)
    logger.warning("Rejected request: %s", detail)
    request.state.refused = "BadRequest"
    return JSONResponse(error_body(detail), status_code=422)


async def _request_id_reused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestIdReused)
    logger.warning("Rejected request: %s", exc)
    request.state.refused = exc.code
    body = error_body(exc.message, request_id=exc.details.get("request_id"), error=exc.to_info())
    return JSONResponse(body, status_code=409)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    # Control calls (cancel, retry) on something missing, or in a state that forbids them.
    assert isinstance(exc, EksOpsError)
    logger.warning("Refused: %s", exc.message)
    request.state.refused = exc.code
    return JSONResponse(error_body(exc.message, error=exc.to_info()), status_code=exc.http_status)


async def _tenant_refusal(request: Request, exc: Exception) -> JSONResponse:
    # Out of scope, against the Job policy (403), or over a quota (429, Retry-After).
    assert isinstance(exc, EksOpsError)
    logger.warning("Refused: %s", exc.message)
    request.state.refused = exc.code
    headers = {"Retry-After": str(int(exc.retry_after or 1))} if exc.http_status == 429 else None
    body = error_body(exc.message, error=exc.to_info())
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


async def _queue_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Redis itself, an enqueue it broke off (resubmitting the same ID is safe), or a
    # status read the producer library gave up on.
    text = f"{type(exc).__name__}: {exc}" if isinstance(exc, RedisError) else str(exc)
    logger.error("Queue unavailable: %s", text)
    return JSONResponse(
        error_body(f"Queue unavailable: {text}"), status_code=503, headers={"Retry-After": "5"}
    )


async def _bulk_interrupted(request: Request, exc: Exception) -> JSONResponse:
    # Some items went in, some did not: the caller needs the request IDs it was given,
    # or a retry with new IDs would enqueue the first items twice.
    assert isinstance(exc, BatchInterrupted)
    logger.error("Queue unavailable: %s", exc)
    return JSONResponse(
        error_body(f"Queue unavailable: {exc}", submission=exc.submission),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette answers a wrong method with the methods of the first route matching the
    # path only; a path served by several routes (GET and DELETE of /api/tasks/{id})
    # must list them all in Allow.
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            allowed |= set(getattr(route, "methods", None) or ())
    return JSONResponse(
        {"detail": exc.detail}, status_code=405, headers={"Allow": ", ".join(sorted(allowed))}
    )


def install_handlers(app: FastAPI) -> None:
    """Answer invalid input 422, a reused request ID 409, a missing batch or request
    404, a control call the state forbids 409, and a dead Redis 503."""
    app.add_exception_handler(InvalidRequest, _invalid_request)
    app.add_exception_handler(RequestValidationError, _invalid_parameters)
    app.add_exception_handler(RequestIdReused, _request_id_reused)
    for refusal in (NotFound, Conflict):
        app.add_exception_handler(refusal, _refused)
    for tenant_refusal in (Forbidden, QuotaExceeded):
        app.add_exception_handler(tenant_refusal, _tenant_refusal)
    for unavailable in (RedisError, Unavailable):
        app.add_exception_handler(unavailable, _queue_unavailable)
    app.add_exception_handler(BatchInterrupted, _bulk_interrupted)
    app.add_exception_handler(StarletteHTTPException, _http_error)
