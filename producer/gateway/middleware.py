"""What every HTTP request goes through before a route: its ID and its size.

* ``X-Request-ID``: the caller's (must be a UUID; it becomes the task's request ID, which
  makes a repeated submission idempotent) or a new one. It is bound to the logging
  context for the whole request, so every line carries ``[xxxxxxxx]``, and it is
  returned on every response, errors included.
* Body size: a ``Content-Length`` above the limit is refused with 413 before anything is
  read; a body without one (chunked) is counted while it is read and refused the same.
* One access line per request in the seed format (``/health`` at DEBUG: probes are
  frequent); run uvicorn with ``--no-access-log`` to avoid a second, untagged one.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: the context variable set here
must be the one the route sees, and responses are passed through untouched.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.errors import InvalidName
from worker.logs import bound_request
from worker.names import normalise_request_id

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_QUIET_PATHS = frozenset({"/health"})


def too_large(size: int | str, limit: int) -> str:
    """Return the 413 detail for a body of ``size`` bytes."""
    return f"Request body is {size} bytes; the limit is {limit} bytes (GATEWAY_MAX_BODY_BYTES)"


class RequestContext:
    """Assign the request ID, enforce the body limit and log one access line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        larger_bodies: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths that accept bigger bodies (bulk submission), with their own limit.
        self.larger_bodies = larger_bodies or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        supplied = headers.get(REQUEST_ID_HEADER)
        try:
            request_id = str(uuid.uuid4()) if supplied is None else normalise_request_id(supplied)
        except InvalidName as exc:
            rid = str(uuid.uuid4())
            scope.setdefault("state", {}).update(request_id=rid, refused="InvalidRequestId")
            with bound_request(rid):
                logger.warning("Rejected request: invalid %s header", REQUEST_ID_HEADER)
                await _reply(send, 422, f"Invalid {REQUEST_ID_HEADER} header: {exc}", rid)
            return
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.larger_bodies.get(scope.get("path", ""), self.max_body_bytes)
        with bound_request(request_id):
            declared = headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                logger.warning("Rejected request: %s", too_large(declared, limit))
                scope["state"]["refused"] = "RequestTooLarge"
                await _reply(send, 413, too_large(declared, limit), request_id)
                return
            await self._handle(scope, receive, send, request_id, limit)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, limit: int
    ) -> None:
        started = time.perf_counter()
        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large(f"over {received}", limit))
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        finally:
            path = scope.get("path", "")
            logger.log(
                logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
                "%s %s -> %d (%.1f ms)",
                scope.get("method", "-"),
                path,
                status,
                (time.perf_counter() - started) * 1000,
            )


async def _reply(send: Send, status: int, detail: str, request_id: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
