"""The aiohttp application: one port for the EKS API, the Kubernetes API and admin.

Request handling mirrors the apiserver's filter chain in order - injected faults
and latency first (as a flaky network or load balancer would), then
authentication (401), authorization (403), then the resource handler - and
converts every ``ApiError`` into its Status body here, so handlers never touch HTTP.
Each request is counted by verb, resource and answered code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubesim import admin, discovery, eks, jobs, namespaces, rbac, statuses
from kubesim.auth import TokenRejected
from kubesim.calls import Call, Reply
from kubesim.faults import FaultRule
from kubesim.requestinfo import RequestInfo, parse
from kubesim.state import SimState

log = logging.getLogger(__name__)
STATE_KEY = web.AppKey("kubesim_state", SimState)
CA_KEY = web.AppKey("kubesim_ca_b64", str)
_PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
_HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class DroppedConnection(Exception):
    """Raised after a fault closed the client's connection; nothing is sent."""


def _json(code: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        body=_dumps(body).encode(), status=code, content_type="application/json"
    )
    response.headers["Audit-Id"] = str(uuid.uuid4())
    response.headers["Cache-Control"] = "no-cache, private"
    if headers:
        response.headers.update(headers)
    return response


async def _apply_faults(
    request: web.Request, state: SimState, info: RequestInfo
) -> FaultRule | None:
    decision = state.faults.decide(info)
    delay = decision.delay + state.config.latency_ms / 1000.0
    if delay > 0:
        await asyncio.sleep(delay)
    rule = decision.failure
    if rule is not None and rule.effect == "drop":
        if request.transport is not None:
            request.transport.abort()
        raise DroppedConnection
    return rule


def _k8s_fault(rule: FaultRule) -> statuses.ApiError:
    if rule.code == 429:
        return statuses.too_many_requests(rule.retry_after, rule.message)
    if rule.code == 500:
        return statuses.internal_error(rule.message or "kubesim injected fault")
    if rule.code == 502:
        return statuses.bad_gateway(rule.message or "bad gateway")
    if rule.code == 503:
        return statuses.service_unavailable(
            rule.message or "the server is currently unable to handle the request"
        )
    return statuses.gateway_timeout(
        rule.message
        or "request did not complete within requested timeout - context deadline exceeded"
    )


def _authenticate(request: web.Request, state: SimState, info: RequestInfo) -> str:
    header = request.headers.get("Authorization")
    if header is None and not state.verifier.reject_all:
        if (info.path.rstrip("/") or "/") in _PUBLIC_PATHS:
            return rbac.ANONYMOUS
        raise rbac.forbidden_error(info, rbac.ANONYMOUS)
    try:
        return state.verifier.authenticate(header).arn
    except TokenRejected as exc:
        log.info("401 for %s %s: %s", request.method, request.path, exc)
        raise statuses.unauthorized() from exc


def _non_resource(request: web.Request, state: SimState, info: RequestInfo) -> web.Response | Reply:
    path = info.path.rstrip("/") or "/"
    if request.method != "GET":
        raise statuses.path_not_found()
    if path in _HEALTH_PATHS:
        return web.Response(text="ok", content_type="text/plain")
    documents: dict[str, Callable[[], Any]] = {
        "/version": lambda: discovery.version(state.identity),
        "/api": lambda: discovery.api_versions(f"{request.host}"),
        "/apis": discovery.api_group_list,
        "/api/v1": discovery.core_v1,
        "/apis/batch/v1": discovery.batch_v1,
        "/apis/batch": lambda: discovery.api_group("batch"),
    }
    build = documents.get(path)
    if build is None:
        raise statuses.path_not_found()
    return Reply(200, build())


def _dispatch(state: SimState, call: Call) -> Reply:
    info, store, config = call.info, state.store, state.config
    if info.extra_parts or info.verb == "watch":
        if info.verb == "watch":
            raise statuses.method_not_supported(info.resource, info.api_group, "watch")
        raise statuses.path_not_found()
    if (info.api_group, info.api_version, info.resource) == ("", "v1", "namespaces"):
        if info.subresource not in ("", "status"):
            raise statuses.path_not_found()
        if info.subresource == "status" and info.verb != "get":
            raise statuses.method_not_supported("namespaces/status", "", info.verb)
        handlers = {
            "create": lambda: namespaces.create(store, call),
            "list": lambda: namespaces.list_all(store, call),
            "get": lambda: namespaces.get(store, call),
            "delete": lambda: namespaces.delete(store, config, call),
        }
    elif (info.api_group, info.api_version, info.resource) == ("batch", "v1", "jobs"):
        if info.subresource not in ("", "status") or (info.verb == "create" and not info.namespace):
            raise statuses.path_not_found()
        if info.subresource == "status" and info.verb != "get":
            raise statuses.method_not_supported("jobs/status", "batch", info.verb)
        handlers = {
            "create": lambda: jobs.create(store, config, call),
            "list": lambda: jobs.list_jobs(store, call),
            "get": lambda: jobs.get(store, call),
            "delete": lambda: jobs.delete(store, config, call),
        }
    else:
        raise statuses.path_not_found()
    handler = handlers.get(info.verb)
    if handler is None:
        raise statuses.method_not_supported(info.resource, info.api_group, info.verb)
    return handler()


async def _kubernetes(request: web.Request, state: SimState) -> web.StreamResponse:
    watch = request.query.get("watch") in ("true", "1")
    info = parse(request.method, request.path, watch=watch)
    code = 0
    try:
        rule = await _apply_faults(request, state, info)
        if rule is not None:
            raise _k8s_fault(rule)
        user = _authenticate(request, state, info)
        state.authorizer.check(info, user)
        if not info.is_resource:
            result = _non_resource(request, state, info)
            if isinstance(result, web.Response):
                code = result.status
                return result
            reply = result
        else:
            body = await request.read()
            reply = _dispatch(state, Call(info, request.query, body, user, time.time()))
        code = reply.code
        return _json(reply.code, reply.body, reply.headers)
    except statuses.ApiError as exc:
        code = exc.code
        return _json(exc.code, exc.status, exc.headers)
    finally:
        state.count(info.verb, info.resource_label, code)


async def _eks(request: web.Request, state: SimState) -> web.StreamResponse:
    parts = [p for p in request.path.split("/") if p]
    name = parts[1] if len(parts) == 2 else ""
    verb = "get" if name else "list"
    info = RequestInfo(
        path=request.path, verb=verb, is_resource=True, resource="clusters", name=name
    )
    code = 0
    try:
        rule = await _apply_faults(request, state, info)
        body = await request.read()
        if rule is not None:
            reply = _eks_fault(rule)
        else:
            url = f"https://{request.host}{request.raw_path}"
            reply = eks.check_signature(request.method, url, request.headers, body) or _eks_route(
                request, state, parts, name
            )
        code = reply.code
        return _json(
            reply.code, reply.body, {"x-amzn-RequestId": str(uuid.uuid4()), **reply.headers}
        )
    finally:
        state.count(info.verb, info.resource_label, code)


def _eks_route(request: web.Request, state: SimState, parts: list[str], name: str) -> eks.AwsReply:
    if request.method != "GET" or len(parts) > 2:
        return eks.aws_error(404, "UnknownOperationException", "Unknown operation")
    if not name:
        return eks.list_clusters(state.identity)
    ca_b64 = request.app[CA_KEY]
    return eks.describe_cluster(
        state.identity, name, endpoint=state.endpoint, ca_b64=ca_b64, created=state.created
    )


def _eks_fault(rule: FaultRule) -> eks.AwsReply:
    if rule.code == 429:
        reply = eks.aws_error(429, "ThrottlingException", rule.message or "Rate exceeded")
        reply.headers["Retry-After"] = str(rule.retry_after)
        return reply
    if rule.code == 500:
        return eks.aws_error(500, "ServerException", rule.message or "An internal error occurred.")
    return eks.aws_error(
        rule.code, "ServiceUnavailableException", rule.message or "Service unavailable."
    )


async def _entry(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        if request.path == "/clusters" or request.path.startswith("/clusters/"):
            return await _eks(request, state)
        return await _kubernetes(request, state)
    except DroppedConnection:
        # the transport is already aborted; this response is never written
        return web.Response(status=499)


def build_app(state: SimState, ca_pem: bytes) -> web.Application:
    """The whole HTTP surface; ``state.endpoint`` must be set once the port is bound."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[STATE_KEY] = state
    app[CA_KEY] = base64.b64encode(ca_pem).decode()
    admin.register(app, state)
    app.router.add_route("*", "/{tail:.*}", _entry)
    return app
