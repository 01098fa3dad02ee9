"""The admin API under ``/_kubesim/``: how tests steer the simulator.

No authentication, but only loopback clients are served. Bodies and answers are
JSON; a bad body is a 400 with ``{"error": ...}``. Endpoints:

``GET healthz`` · ``POST reset`` · ``GET|DELETE counters`` ·
``GET|PATCH config`` · ``GET|POST|DELETE faults`` · ``DELETE faults/{id}`` ·
``GET|POST|DELETE rbac/deny`` · ``DELETE rbac/deny/{id}`` ·
``GET tokens`` · ``POST tokens/revoke`` · ``PUT tokens/reject-all`` ·
``GET|DELETE watches`` (count / close every open watch, as an apiserver restart
does) · ``GET history`` · ``POST history/compact`` (resuming from any older
resourceVersion is then 410 Gone).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kubesim.state import SimState

PREFIX = "/_kubesim"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def _guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        remote = request.remote or ""
        try:
            loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return _error("the admin API answers loopback clients only", 403)
        try:
            return await handler(request)
        except (ValueError, TypeError) as exc:
            return _error(str(exc))

    return wrapper


def register(app: web.Application, state: SimState) -> None:
    """Add the admin routes to ``app``."""

    async def healthz(_: web.Request) -> web.Response:
        return _ok({"status": "ok", "cluster": state.identity.name, "url": state.endpoint})

    async def reset(_: web.Request) -> web.Response:
        state.reset()
        return _ok({"status": "reset"})

    async def counters(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            state.counters.clear()
        return _ok(state.counters_json())

    async def config(request: web.Request) -> web.Response:
        if request.method == "PATCH":
            state.config.update(await _body(request))
        return _ok(state.config.as_dict())

    async def faults(request: web.Request) -> web.Response:
        if request.method == "POST":
            return _ok(state.faults.add(await _body(request)).as_dict(), 201)
        if request.method == "DELETE":
            state.faults.clear()
        return _ok({"rules": [r.as_dict() for r in state.faults.rules]})

    async def fault(request: web.Request) -> web.Response:
        if not state.faults.remove(int(request.match_info["rule_id"])):
            return _error("no such fault rule", 404)
        return _ok({"rules": [r.as_dict() for r in state.faults.rules]})

    async def denies(request: web.Request) -> web.Response:
        if request.method == "POST":
            return _ok(state.authorizer.add(await _body(request)).as_dict(), 201)
        if request.method == "DELETE":
            state.authorizer.rules.clear()
        return _ok({"rules": [r.as_dict() for r in state.authorizer.rules]})

    async def deny(request: web.Request) -> web.Response:
        if not state.authorizer.remove(int(request.match_info["rule_id"])):
            return _error("no such deny rule", 404)
        return _ok({"rules": [r.as_dict() for r in state.authorizer.rules]})

    def _tokens() -> dict[str, Any]:
        verifier = state.verifier
        return {
            "reject_all": verifier.reject_all,
            "revoked_before": verifier.revoked_before,
            "verified": verifier.verified,
        }

    async def tokens(_: web.Request) -> web.Response:
        return _ok(_tokens())

    async def revoke(_: web.Request) -> web.Response:
        state.verifier.revoke_existing()
        return _ok(_tokens())

    async def reject_all(request: web.Request) -> web.Response:
        enabled = (await _body(request)).get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        state.verifier.reject_all = enabled
        return _ok(_tokens())

    async def watches(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return _ok({"closed": state.cluster.watches.close_all()})
        return _ok({"open": state.cluster.watches.count()})

    async def compact(_: web.Request) -> web.Response:
        state.store.flush()
        state.store.compact()
        return _ok({"compacted": state.store.compacted})

    async def history(_: web.Request) -> web.Response:
        store = state.store
        store.flush()
        return _ok(
            {
                "resourceVersion": store.rv,
                "oldest": store.oldest_resumable(),
                "entries": len(store.history),
            }
        )

    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/watches", watches),
        ("DELETE", "/watches", watches),
        ("POST", "/history/compact", compact),
        ("GET", "/history", history),
        ("GET", "/healthz", healthz),
        ("POST", "/reset", reset),
        ("GET", "/counters", counters),
        ("DELETE", "/counters", counters),
        ("GET", "/config", config),
        ("PATCH", "/config", config),
        ("GET", "/faults", faults),
        ("POST", "/faults", faults),
        ("DELETE", "/faults", faults),
        ("DELETE", "/faults/{rule_id:\\d+}", fault),
        ("GET", "/rbac/deny", denies),
        ("POST", "/rbac/deny", denies),
        ("DELETE", "/rbac/deny", denies),
        ("DELETE", "/rbac/deny/{rule_id:\\d+}", deny),
        ("GET", "/tokens", tokens),
        ("POST", "/tokens/revoke", revoke),
        ("PUT", "/tokens/reject-all", reject_all),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, _guarded(handler))
