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
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubesim import (
    admin,
    discovery,
    eks,
    kinds,
    lists,
    negotiation,
    openapi,
    options,
    podlogs,
    rbac,
    registry,
    reviews,
    selectors,
    statuses,
    tables,
    watch,
)
from kubesim.auth import TokenRejected
from kubesim.calls import Call, Reply
from kubesim.faults import FaultRule
from kubesim.requestinfo import RequestInfo, parse
from kubesim.state import SimState
from kubesim.store import Store

log = logging.getLogger(__name__)
STATE_KEY = web.AppKey("kubesim_state", SimState)
CA_KEY = web.AppKey("kubesim_ca_b64", str)
_PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
_HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _audit_id() -> str:
    return Store.new_uid()


class DroppedConnection(Exception):
    """Raised after a fault closed the client's connection; nothing is sent."""


def _json(code: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        body=_dumps(body).encode(), status=code, content_type="application/json"
    )
    response.headers["Audit-Id"] = _audit_id()
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
    accept = request.headers.get("Accept", "")
    version = discovery.aggregated_version(accept) if path in ("/api", "/apis") else ""
    if version:
        body = discovery.aggregated(legacy=path == "/api", version=version)
        response = _json(200, body)
        response.headers["Content-Type"] = (
            f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        )
        return response
    if path == "/openapi/v2" or path.startswith("/openapi/v3"):
        return openapi.serve(request, path)
    documents: dict[str, Callable[[], Any]] = {
        "/version": lambda: discovery.version(state.identity),
        "/api": lambda: discovery.api_versions(f"{request.host}"),
        "/apis": discovery.api_group_list,
    }
    build = documents.get(path)
    if build is None:
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is not None:
                return Reply(200, group)
        if parts[0] == "api" and len(parts) == 2:
            found = discovery.resource_list("", parts[1])
            if found is not None:
                return Reply(200, found)
        if parts[0] == "apis" and len(parts) == 3:
            found = discovery.resource_list(parts[1], parts[2])
            if found is not None:
                return Reply(200, found)
        raise statuses.path_not_found()
    return Reply(200, build())


_SUBRESOURCE_VERBS = {
    "status": ("get", "update", "patch"),
    "finalize": ("update",),
    "log": ("get",),
}


def _dispatch(state: SimState, call: Call) -> Reply:
    info = call.info
    cluster = state.cluster
    if info.extra_parts:
        raise statuses.path_not_found()
    review = reviews.handle(state, call)
    if review is not None:
        return review
    kind = kinds.lookup(info.api_group, info.api_version, info.resource)
    if kind is None:
        raise statuses.path_not_found()
    cluster.store.flush(kind.table)
    if info.namespace and not kind.namespaced and info.resource != "namespaces":
        raise statuses.path_not_found()
    if kind.namespaced and info.verb == "create" and not info.namespace:
        raise statuses.path_not_found()
    if info.verb == "create" and info.name and not info.subresource:
        raise statuses.method_not_supported(kind.resource, kind.group, "create")
    if info.subresource:
        if info.subresource not in kind.subresources:
            raise statuses.path_not_found()
        if info.verb not in _SUBRESOURCE_VERBS[info.subresource]:
            raise statuses.method_not_supported(
                f"{kind.resource}/{info.subresource}", kind.group, info.verb
            )
        if info.subresource == "log":
            return podlogs.read(cluster, call)
    handlers: dict[str, Callable[[], Reply]] = {
        "get": lambda: registry.get(cluster, kind, call),
        "list": lambda: lists.list_objects(cluster.store, kind, call),
        "create": lambda: registry.create(cluster, kind, call),
        "update": lambda: registry.update(cluster, kind, call),
        "patch": lambda: registry.patch(cluster, kind, call),
        "delete": lambda: registry.delete(cluster, kind, call),
        "deletecollection": lambda: registry.delete_collection(cluster, kind, call),
    }
    handler = handlers.get(info.verb)
    if handler is None:
        raise statuses.method_not_supported(info.resource, info.api_group, info.verb)
    reply = handler()
    if reply.kind is None:
        reply.kind = kind
    return reply


def _strip_watch(path: str) -> tuple[str, bool]:
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "api" and parts[3] == "watch":
        return "/".join(parts[:3] + parts[4:]), True
    if len(parts) > 4 and parts[1] == "apis" and parts[4] == "watch":
        return "/".join(parts[:4] + parts[5:]), True
    return path, False


def _render(reply: Reply, output: negotiation.Output, call: Call) -> web.Response:
    body: Any = reply.body
    if isinstance(body, (bytes, str)):
        raw = body.encode() if isinstance(body, str) else body
        response = web.Response(body=raw, status=reply.code)
        response.headers["Content-Type"] = reply.headers.pop("Content-Type", "text/plain")
        response.headers["Audit-Id"] = _audit_id()
        response.headers["Cache-Control"] = "no-cache, private"
        response.headers.update(reply.headers)
        return response
    kind = reply.kind
    if output.transform and kind is not None and body.get("kind") != "Status":
        include = call.query.get("includeObject", "")
        if output.transform == "Table":
            body = tables.table(kind, body, version=output.table_version, include=include)
        else:
            body = tables.metadata_view(kind, body, output.transform, output.table_version)
    raw, content_type = negotiation.encode(body, output)
    response = web.Response(body=raw, status=reply.code)
    response.headers["Content-Type"] = content_type
    response.headers["Audit-Id"] = _audit_id()
    response.headers["Cache-Control"] = "no-cache, private"
    if reply.headers:
        response.headers.update(reply.headers)
    return response


async def _serve_watch(
    request: web.Request, state: SimState, call: Call, output: negotiation.Output
) -> web.StreamResponse:
    info = call.info
    kind = kinds.lookup(info.api_group, info.api_version, info.resource)
    if kind is None or info.subresource:
        raise statuses.path_not_found()
    state.store.flush(kind.table)
    if info.name:
        query = dict(call.query)
        selector = f"metadata.name={info.name}"
        query["fieldSelector"] = (
            f"{query['fieldSelector']},{selector}" if query.get("fieldSelector") else selector
        )
        call = Call(
            info, query, call.raw_body, call.user, call.now, call.content_type, call.query_all
        )
    opts = options.list_options(call.query, watch=True)
    labels = selectors.label_predicate(call.query.get("labelSelector"))
    fields = selectors.field_predicate(call.query.get("fieldSelector"), kind.table)
    selective = bool(call.query.get("labelSelector") or call.query.get("fieldSelector"))
    encode = None
    if output.transform == "Table":
        include = call.query.get("includeObject", "")
        version = output.table_version

        def make(obj: Any, first: bool) -> Any:
            return tables.table(kind, obj, version=version, include=include, headers=first)

        encode = watch.table_encoder(make)
    namespace = info.namespace if kind.namespaced else ""
    watcher = watch.open_watch(
        state.store, state.cluster.watches, kind, namespace, opts, labels, fields, selective, encode
    )
    timeout = opts.timeout if opts.timeout is not None else state.config.watch_timeout
    interval = state.config.bookmark_interval if opts.bookmarks else None
    return await watch.stream(
        request,
        state.cluster.watches,
        watcher,
        timeout=timeout,
        bookmark_every=interval,
        current_rv=lambda: state.store.rv,
        content_type=watch.watch_content_type(output.encoding),
        headers={"Audit-Id": _audit_id(), "Cache-Control": "no-cache, private"},
    )


async def _kubernetes(request: web.Request, state: SimState) -> web.StreamResponse:
    path, watch_path = _strip_watch(request.path)
    watching = watch_path or request.query.get("watch") in ("true", "1")
    info = parse(request.method, path, watch=watching)
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
            raw, content_type = negotiation.encode(reply.body, negotiation.Output())
            response = _json(reply.code, reply.body, reply.headers)
            code = reply.code
            del raw, content_type
            return response
        output = negotiation.choose_output(
            request.headers.get("Accept"), request.query.get("pretty")
        )
        body = await request.read()
        query_all = {k: request.query.getall(k) for k in request.query}
        query = {k: v[0] for k, v in query_all.items()}
        if "_agent" not in query:
            query["_agent"] = _manager_from_agent(request.headers.get("User-Agent", ""))
        call = Call(
            info, query, body, user, time.time(), request.headers.get("Content-Type", ""), query_all
        )
        call.user_groups = ()  # type: ignore[attr-defined]
        if info.verb == "watch":
            code = 200
            return await _serve_watch(request, state, call, output)
        reply = _dispatch(state, call)
        code = reply.code
        if isinstance(reply.body, web.StreamResponse):
            return reply.body
        if reply.headers.get("X-Kubesim-Stream"):
            return await podlogs.follow(request, state.cluster, call, reply)
        return _render(reply, output, call)
    except statuses.ApiError as exc:
        code = exc.code
        return _json(exc.code, exc.status, exc.headers)
    except DroppedConnection:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("kubesim failed on %s %s", request.method, request.path)
        code = 500
        error = statuses.internal_error("kubesim could not handle the request")
        return _json(500, error.status)
    finally:
        state.count(info.verb, info.resource_label, code)


def _manager_from_agent(agent: str) -> str:
    """The default field manager: the User-Agent up to the first ``/``."""
    return agent.split("/", 1)[0] if agent else "unknown"


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
        return _json(reply.code, reply.body, {"x-amzn-RequestId": _audit_id(), **reply.headers})
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
