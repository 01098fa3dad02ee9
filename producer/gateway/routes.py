"""The seed API's five endpoints, one per operation of ``worker.catalog``, through the queue.

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

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from producer.gateway.errors import error_body, seed_failure
from producer.gateway.params import QUERY_PARAMETERS, GatewayDep, RequestIdDep, WaitDep
from producer.gateway.schemas import Accepted, error_responses, status_url
from producer.gateway.service import Gateway
from producer.gateway.waiting import WaitFor
from worker.catalog import CATALOG, Spec
from worker.contracts import RequestState
from worker.errors import InvalidRequest

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

# Final states that carry an error: failed, or started and lost (no outcome stored).
_ENDED_BADLY = (RequestState.FAILED, RequestState.UNKNOWN)
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


def accepted(rid: str) -> JSONResponse:
    """Return the 202 answer pointing at the request's status."""
    url = status_url(rid)
    return JSONResponse(
        Accepted(request_id=rid, status_url=url).model_dump(),
        status_code=202,
        headers={"Location": url},
    )


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


async def _run(
    service: Gateway,
    spec: Spec,
    arguments: Mapping[str, Any],
    rid: str,
    wait: WaitFor | None,
) -> JSONResponse:
    # What the seed's texts name: the arguments, their defaults filled in.
    named = spec.with_defaults(arguments)
    _log_request(spec, named)
    submission = await service.submit(spec.operation, arguments, request_id=rid)
    if wait is None:
        return accepted(submission.request_id)
    status = await service.wait(submission.request_id, wait)
    if status.state is RequestState.SUCCEEDED:
        result = status.result or {}
        _log_success(spec, named, result)
        return JSONResponse(result, status_code=200)
    if status.error is not None and status.state in _ENDED_BADLY:
        failure = seed_failure(spec, named, status.error)
        logger.error("%s", failure.log_text(spec.seed.doing))
        body = error_body(failure.detail, request_id=submission.request_id, error=failure.error)
        return JSONResponse(body, status_code=failure.status_code)
    logger.info("Request still %s after waiting %ss; answering 202", status.state.value, wait)
    return accepted(submission.request_id)


def _responses(spec: Spec) -> dict[int | str, dict[str, Any]]:
    ok: dict[int | str, dict[str, Any]] = {
        200: {"model": spec.result, "description": "With ?wait: the seed's response body."}
    }
    # 409 also answers a request ID reused for another operation.
    codes = sorted({*spec.route.errors, 409, 422, 500, 503, 504})
    return {**ok, **error_responses(*codes)}


def _body_endpoint(spec: Spec) -> Callable[..., Any]:
    async def endpoint(
        request: Request, service: GatewayDep, rid: RequestIdDep, wait: WaitDep
    ) -> JSONResponse:
        return await _run(service, spec, await read_json(request), rid, wait)

    return endpoint


def _query_endpoint(spec: Spec) -> Callable[..., Any]:
    names = [given.field for given in spec.inputs]

    async def endpoint(
        service: GatewayDep, rid: RequestIdDep, wait: WaitDep, **query: Any
    ) -> JSONResponse:
        return await _run(service, spec, {name: query[name] for name in names}, rid, wait)

    fixed = list(inspect.signature(endpoint).parameters.values())[:3]
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(name, keyword, annotation=QUERY_PARAMETERS[name][0], default=default)
        for name in names
        for default in [QUERY_PARAMETERS[name][1]]
    ]
    endpoint.__signature__ = inspect.Signature([*fixed, *parameters])  # type: ignore[attr-defined]
    return endpoint


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
