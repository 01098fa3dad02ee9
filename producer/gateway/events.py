"""``GET /api/events``: request and Job transitions pushed to callers, as Server-Sent Events.

The stream is ``worker.events``'s Redis Stream: every request start, retry and end,
and every Job phase the tracker records, in order. ``?batch_id=`` or ``?request_id=``
narrows it; each SSE event's ``id`` is its stream ID, so a client that reconnects
with ``Last-Event-ID`` (what browsers' ``EventSource`` does by itself) or ``?after=``
resumes exactly after the last event it saw, within the stream's bounded history.
A stream reads Redis with the asyncio client (no thread per caller); at most
``GATEWAY_MAX_EVENT_STREAMS`` are open at once (503 beyond); a caller that goes away
ends its stream at once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from producer.gateway.errors import error_body
from producer.gateway.ownership import owns_batch, owns_request
from producer.gateway.params import GatewayDep, PrincipalDep
from producer.gateway.schemas import error_responses
from producer.gateway.service import Gateway
from worker.errors import OutOfScope
from worker.events import read_async, valid_position
from worker.tenants import Tenant

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

EVENTS_PATH = "/api/events"


@router.get(
    EVENTS_PATH,
    summary="Request and Job transitions as Server-Sent Events (resumable)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "text/event-stream: each event has an id (resume with "
            "Last-Event-ID), an event name (request or job) and JSON data.",
            "content": {"text/event-stream": {}},
        },
        **error_responses(422, 503),
    },
)
async def events(
    request: Request,
    service: GatewayDep,
    *,
    batch_id: Annotated[uuid.UUID | None, Query(description="Only this batch's events.")] = None,
    request_id: Annotated[
        uuid.UUID | None, Query(description="Only this request's events (and its Job's).")
    ] = None,
    after: Annotated[
        str | None,
        Query(description="Start after this event ID (0: from the oldest kept); default: now."),
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    principal: PrincipalDep,
) -> Any:
    """Stream transitions as they are recorded; filter by batch or request.

    A tenant's caller must name a request or batch of its own (another tenant's reads
    as a missing one: 404); only the unrestricted tenant may stream everything.
    """
    start = last_event_id or after or "$"
    if not valid_position(start):
        detail = f"Invalid request: after {start!r} is not an event ID (such as 1733081000000-0)"
        return JSONResponse(error_body(detail), status_code=422)
    batch = str(batch_id) if batch_id else None
    rid = str(request_id) if request_id else None
    refusal = await _refusal(service, principal.tenant, batch, rid)
    if refusal is not None:
        return refusal
    streams = service.event_streams
    if not streams.enter():
        detail = "Too many event streams are open (GATEWAY_MAX_EVENT_STREAMS); retry later"
        return JSONResponse(error_body(detail), status_code=503, headers={"Retry-After": "5"})

    async def stream() -> AsyncIterator[dict[str, str]]:
        position = start
        try:
            while not await request.is_disconnected():
                found, position = await read_async(
                    streams.redis, after=position, request_id=rid, batch_id=batch, block_ms=2_000
                )
                for event in found:
                    yield {"id": event.id, "event": event.kind, "data": json.dumps(event.as_dict())}
        finally:
            streams.leave()

    logger.info("Event stream opened (batch=%s request=%s after=%s)", batch, rid, start)
    return EventSourceResponse(stream(), ping=15)


async def _refusal(
    service: Gateway, tenant: Tenant, batch: str | None, rid: str | None
) -> JSONResponse | None:
    """The answer refusing a tenant's stream, or None when it may open it."""
    if tenant.unrestricted:
        return None
    if batch is None and rid is None:
        raise OutOfScope(
            f"Tenant {tenant.name} may stream only its own events: give ?request_id= or "
            "?batch_id= (scope: events)",
            details={"scope": "events"},
        )
    if batch is not None and not await owns_batch(service, tenant, batch):
        detail = f"Batch {batch} not found: never submitted, or it expired"
        return JSONResponse(error_body(detail), status_code=404)
    if rid is not None and not await owns_request(service, tenant, rid):
        detail = f"Request {rid} not found: never submitted, or its result expired"
        return JSONResponse(error_body(detail, request_id=rid), status_code=404)
    return None
