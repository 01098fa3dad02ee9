"""The seed API's five endpoints and the job-logs read, one per operation of ``worker.catalog``.

Each endpoint is built from its operation's declaration (method, path, summary, body
or query parameters, the seed's texts): it logs the seed's ``API request: ...`` line,
hands its input to the :class:`~producer.gateway.service.Gateway` (validated with the
shared contracts; nothing invalid is enqueued) and answers ``202 Accepted`` with
``{request_id, status_url}`` and a ``Location`` header. With ``?wait=SECONDS`` it waits
for the outcome and answers as the seed did: 200 with the seed's body, or the seed's
status code and ``detail`` text (see :mod:`producer.gateway.errors`); if the wait runs
out, 202 as without it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from producer.audit import target_of
from producer.gateway.errors import error_body, seed_failure
from producer.gateway.keyring import Principal
from producer.gateway.params import (
    QUERY_PARAMETERS,
    CallbackUrl,
    GatewayDep,
    PrincipalDep,
    RequestIdDep,
    WaitDep,
    WaitForJob,
)
from producer.gateway.schemas import Accepted, error_responses, status_url
from producer.gateway.service import Gateway
from producer.gateway.waiting import WaitFor
from worker.catalog import CATALOG, Spec
from worker.contracts import Operation, RequestState
from worker.errors import ErrorInfo, InvalidRequest, NotFound
from worker.tenants import Tenant

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

# Final states that carry an error: failed, or started and lost (no outcome stored).
_ENDED_BADLY = (RequestState.FAILED, RequestState.CANCELLED, RequestState.UNKNOWN)
_PARSE_IN_THREAD_BYTES = 256 * 1024


async def read_json(request: Request) -> dict[str, Any]:
    """Return the JSON object of the request body, or raise InvalidRequest saying why."""
    raw = await request.body()
    try:
        if len(raw) > _PARSE_IN_THREAD_BYTES:  # a bulk body: seconds of CPU, off the loop
            body = await anyio.to_thread.run_sync(json.loads, raw)
        else:
            body = json.loads(raw) if raw else None
    except ValueError as exc:
        raise InvalidRequest(f"Invalid request body: not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidRequest("Invalid request body: JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid request body: expected a JSON object, got {type(body).__name__}"
        )
    return body


def shown(value: object) -> str:
    """Return ``value`` for a log line; anything not a plain word is quoted (no forging)."""
    text = str(value)
    return text if text.isprintable() and " " not in text else repr(text)


def accepted_body(rid: str) -> dict[str, Any]:
    """Return the 202 body pointing at the request's status."""
    return Accepted(request_id=rid, status_url=status_url(rid)).model_dump()


def accepted(rid: str) -> JSONResponse:
    """Return the 202 answer pointing at the request's status."""
    return JSONResponse(accepted_body(rid), status_code=202, headers={"Location": status_url(rid)})


def _log_request(spec: Spec, arguments: Mapping[str, Any]) -> None:
    fields = " ".join(
        f"{label}={shown(arguments.get(name))}" for label, name in spec.seed.log_fields
    )
    logger.info("API request: %s %s", spec.operation.value, fields)


def _log_success(spec: Spec, arguments: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    values = {**arguments, **result}
    if spec.seed.detail:
        logger.debug("%s", spec.seed.detail.format_map(values))
    logger.info("%s", spec.seed.succeeded.format_map(values))


@dataclass(frozen=True)
class Call:
    """One HTTP call of an operation: its arguments, request ID and what it waits for."""

    spec: Spec
    arguments: Mapping[str, Any]
    rid: str
    wait: WaitFor | None
    wait_for: str | None
    disconnected: Callable[[], Awaitable[bool]]
    callback_url: str | None = None
    tenant: Tenant | None = None


async def _run(service: Gateway, call: Call) -> JSONResponse:
    spec = call.spec
    # What the seed's texts name: the arguments, their defaults filled in.
    named = spec.with_defaults(call.arguments)
    _log_request(spec, named)
    if call.tenant is not None:  # before any read or enqueue: out of scope is a 403
        call.tenant.scope.check(spec.operation, named)
    wait = call.wait
    default_wait = service.settings.gateway_default_wait_seconds
    if wait is None and default_wait > 0:  # GATEWAY_DEFAULT_WAIT_SECONDS: the seed's sync API
        wait = WaitFor(default_wait, call.disconnected)
    if spec.reads_record and call.callback_url is None:
        try:
            recorded = await service.jobs.recorded_status(
                named["job_name"], named["namespace"], call.arguments.get("cluster"), call.tenant
            )
        except NotFound as exc:
            logger.info("Job %s was deleted before it ended", named["job_name"])
            return JSONResponse(error_body(exc.message, error=exc.to_info()), status_code=404)
        if recorded is not None:
            return await _job_answer(service, call, None, recorded, named)
        # As the synchronous API did: answer with the status, not a 202 to poll.
        wait = wait or WaitFor(service.settings.gateway_wait_max_seconds, call.disconnected)
    submission = await service.submit(
        spec.operation,
        call.arguments,
        request_id=call.rid,
        callback_url=call.callback_url,
        tenant=call.tenant,
    )
    if wait is None:
        return accepted(submission.request_id)
    status = await service.wait(submission.request_id, wait)
    if status.state is RequestState.SUCCEEDED:
        result = status.result or {}
        _log_success(spec, named, result)
        if call.wait_for and spec.waits_for_job:
            return await _job_answer(service, call, submission.request_id, result, named)
        return JSONResponse(result, status_code=200)
    if status.error is not None and status.state in _ENDED_BADLY:
        tail = await _captured_tail(service, spec, named, status.error)
        if tail is not None:
            return JSONResponse(tail, status_code=200)
        failure = seed_failure(spec, named, status.error)
        logger.error("%s", failure.log_text(spec.seed.doing))
        body = error_body(failure.detail, request_id=submission.request_id, error=failure.error)
        return JSONResponse(body, status_code=failure.status_code)
    logger.info("Request still %s after waiting %ss; answering 202", status.state.value, wait)
    return accepted(submission.request_id)


async def _job_answer(
    service: Gateway,
    call: Call,
    request_id: str | None,
    result: dict[str, Any],
    named: Mapping[str, Any],
) -> JSONResponse:
    """The Job's status; with ?wait_for=complete, once it has ended (202 if not yet)."""
    if not call.wait_for:
        return JSONResponse(result, status_code=200)
    key = await service.jobs.key_of(request_id, result, call.arguments.get("cluster"))
    seconds = min(
        call.wait.seconds if call.wait else service.settings.gateway_wait_max_seconds,
        service.settings.gateway_wait_max_seconds,
    )
    record = await service.jobs.wait_for_end(key, seconds, call.disconnected) if key else None
    if record is not None and record.ended:
        logger.info("Job %s ended: %s", record.name, record.phase)
        return JSONResponse(record.status_body(), status_code=200)
    logger.info("Job %s still running after the wait; answering 202", named.get("job_name"))
    body: dict[str, Any] = {"job": record.status_body() if record else None}
    if request_id is not None:
        body = {**accepted_body(request_id), **body}
    return JSONResponse(body, status_code=202)


async def _captured_tail(
    service: Gateway, spec: Spec, named: Mapping[str, Any], error: ErrorInfo
) -> dict[str, Any] | None:
    """For a Job whose pods (or the Job itself) are gone: the tail the tracker captured."""
    if spec.operation is not Operation.GET_JOB_LOGS or error.http_status != 404:
        return None
    record = await anyio.to_thread.run_sync(
        partial(service.eksops.job, named["job_name"], named["namespace"])
    )
    if record is None or record.log is None:
        return None
    tail = record.log
    return {
        "job_name": named["job_name"],
        "namespace": named["namespace"],
        "logs": [{key: tail.get(key) for key in ("pod", "container", "lines", "truncated")}],
        "source": "tracker",
    }


def _responses(spec: Spec) -> dict[int | str, dict[str, Any]]:
    ok: dict[int | str, dict[str, Any]] = {
        200: {"model": spec.result, "description": "With ?wait: the seed's response body."}
    }
    # 409 also answers a request ID reused for another operation.
    codes = sorted({*spec.route.errors, 409, 422, 500, 503, 504})
    return {**ok, **error_responses(*codes)}


async def _serve(
    request: Request, service: Gateway, call: Call, principal: Principal
) -> JSONResponse:
    """Run one HTTP call of an operation for ``principal`` (its tenant, its audit target)."""
    request.state.target = target_of(call.arguments)
    return await _run(service, dataclasses.replace(call, tenant=principal.tenant))


def _body_endpoint(spec: Spec) -> Callable[..., Any]:
    async def endpoint(
        request: Request,
        service: GatewayDep,
        rid: RequestIdDep,
        wait: WaitDep,
        principal: PrincipalDep,
        *,
        callback_url: CallbackUrl = None,
        wait_for: WaitForJob = None,
    ) -> JSONResponse:
        arguments = await read_json(request)
        call = Call(spec, arguments, rid, wait, wait_for, request.is_disconnected, callback_url)
        return await _serve(request, service, call, principal)

    return _without_wait_for(endpoint, spec)


def _without_wait_for(endpoint: Callable[..., Any], spec: Spec) -> Callable[..., Any]:
    """Drop ``wait_for`` from the endpoint's parameters unless the operation has a Job."""
    if spec.waits_for_job:
        return endpoint
    signature = inspect.signature(endpoint)
    parameters = [p for name, p in signature.parameters.items() if name != "wait_for"]
    endpoint.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return endpoint


def _query_endpoint(spec: Spec) -> Callable[..., Any]:
    names = [given.field for given in spec.inputs]

    async def endpoint(
        request: Request,
        service: GatewayDep,
        rid: RequestIdDep,
        wait: WaitDep,
        principal: PrincipalDep,
        *,
        callback_url: CallbackUrl = None,
        wait_for: WaitForJob = None,
        **query: Any,
    ) -> JSONResponse:
        arguments = {name: query[name] for name in names}
        call = Call(spec, arguments, rid, wait, wait_for, request.is_disconnected, callback_url)
        return await _serve(request, service, call, principal)

    fixed = list(inspect.signature(endpoint).parameters.values())[:7]
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(name, keyword, annotation=QUERY_PARAMETERS[name][0], default=default)
        for name in names
        for default in [QUERY_PARAMETERS[name][1]]
    ]
    endpoint.__signature__ = inspect.Signature([*fixed, *parameters])  # type: ignore[attr-defined]
    return _without_wait_for(endpoint, spec)


def _register(spec: Spec) -> None:
    route = spec.route
    endpoint = _body_endpoint(spec) if route.takes_body else _query_endpoint(spec)
    endpoint.__name__ = spec.operation.value
    endpoint.__doc__ = spec.summary
    extra = {}
    if route.takes_body:
        ref = {"$ref": f"#/components/schemas/{spec.request.__name__}"}
        extra = {
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}
        }
    router.add_api_route(
        route.path,
        endpoint,
        methods=[route.method],
        status_code=202,
        response_model=Accepted,
        responses=_responses(spec),
        openapi_extra=extra or None,
        summary=route.summary,
        name=spec.operation.value,
    )


for _spec in CATALOG.values():
    _register(_spec)
