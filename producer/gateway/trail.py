"""The gateway's audit trail: one :mod:`producer.audit` line per call, after its answer.

A pure ASGI middleware, the outermost layer: around
:class:`~producer.gateway.middleware.RequestContext` (which assigns the request ID on
the shared request state) and the routes. It reads what authentication and the route
left on that state: the principal (tenant and key ID), the target the route named, and
why a call was refused; the operation is the route's endpoint name (``create_job``,
``get_task``, ``create_jobs``, ...). Calls refused before any route (a body over the
limit, a malformed ``X-Request-ID``) are audited too, under the tenant of the key they
present, if it is a known one. ``/health``, ``/metrics`` and the docs' static assets
are not audited: probes, not calls. The key itself is never in a line: only its ID.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.audit import Auditor
from producer.gateway.auth import presented_key
from producer.gateway.keyring import ANONYMOUS, Keyring, Principal

_QUIET = ("/health", "/metrics", "/docs/assets")


def outcome_of(status: int) -> str:
    """Return the audit outcome of an HTTP status."""
    if status < 400:
        return "accepted"
    return "refused" if status < 500 else "failed"


class AuditTrail:
    """Write one audit line per HTTP call."""

    def __init__(self, app: ASGIApp, *, auditor: Auditor, keyring: Keyring) -> None:
        self.app = app
        self.auditor = auditor
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_QUIET):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def noting_send(message: Message) -> None:
            # Written before the answer leaves: a caller that got it finds its line.
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self._record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            if not recorded:
                self._record(scope, 500)

    def _record(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = self._principal(scope, state)
        endpoint = scope.get("endpoint")
        client = scope.get("client")
        path = scope.get("path", "")
        self.auditor.record(
            tenant=principal.tenant.name if principal is not None else None,
            key_id=None if principal in (None, ANONYMOUS) else principal.key_id,
            source=f"{client[0]}:{client[1]}" if client else None,
            operation=getattr(endpoint, "__name__", None) or f"{scope.get('method')} {path}",
            target=state.get("target") or _target(scope),
            request_id=state.get("request_id"),
            outcome=outcome_of(status),
            status=status,
            reason=state.get("refused") if status >= 400 else None,
        )

    def _principal(self, scope: Scope, state: dict[str, Any]) -> Principal | None:
        """Return whose call it was: as authentication found, or from the key presented
        to a call refused before authentication ran; None when no known key was sent."""
        if state.get("refused") == "unauthenticated":
            return None
        if "principal" in state or not self.keyring.enabled:
            found: Principal = state.get("principal", ANONYMOUS)
            return found
        return self.keyring.principal(presented_key(Headers(scope=scope)))


def _target(scope: Scope) -> str | None:
    params = scope.get("path_params") or {}
    for name in ("batch_id", "request_id"):
        if name in params:
            return f"{name.removesuffix('_id')} {params[name]}"
    return None
