"""``GET /api/tasks/{request_id}``: where a request is, and its outcome once it has one.

The ``status_url`` of every 202 points here. The answer is the shared
:class:`~worker.contracts.RequestStatus`: state (queued, started, retrying, succeeded,
failed), the seed's result body or the structured error, and timestamps. It reads
Redis only, never the cluster. An ID that was never submitted (or whose result expired)
is a 404, never "queued"; one that a worker started but whose outcome was never stored
reads ``unknown`` with an ``OutcomeUnknown`` error (200: the poll itself worked).
``?wait=SECONDS`` long-polls until the request is final. ``DELETE`` cancels a request
that has not started: it reads ``cancelled`` and never runs; a running one finishes.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from producer.gateway.errors import error_body
from producer.gateway.ownership import owns_request, require_request
from producer.gateway.params import GatewayDep, PrincipalDep, WaitDep
from producer.gateway.schemas import TASKS_PATH, error_responses
from worker.contracts import RequestState, RequestStatus
from worker.logs import bound_request

logger = logging.getLogger(__name__)

router = APIRouter(tags=["tasks"])


@router.get(
    TASKS_PATH + "/{request_id}",
    response_model=RequestStatus,
    responses=error_responses(404, 422, 503),
    summary="Poll a request: state, result or error, timestamps",
)
async def get_task(
    service: GatewayDep,
    request_id: Annotated[uuid.UUID, Path(description="The request ID a submission returned.")],
    wait: WaitDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """Return the request's status; 404 if the ID was never submitted or has expired.

    Another tenant's request answers the same 404.
    """
    rid = str(request_id)
    if not await owns_request(service, principal.tenant, rid):
        return _not_found(rid)
    if wait is None:
        status = await service.status(rid)
    else:
        status = await service.wait(rid, wait)
    with bound_request(rid):
        logger.debug("Polled: %s", status.state.value)
    if status.state is RequestState.UNKNOWN and status.error is None:
        return _not_found(rid)
    return JSONResponse(status.model_dump(mode="json"))


def _not_found(rid: str) -> JSONResponse:
    detail = f"Request {rid} not found: never submitted, or its result expired"
    return JSONResponse(error_body(detail, request_id=rid), status_code=404)


@router.delete(
    TASKS_PATH + "/{request_id}",
    response_model=RequestStatus,
    responses=error_responses(404, 422, 503),
    summary="Cancel a request that has not started",
)
async def cancel_task(
    service: GatewayDep,
    request_id: Annotated[uuid.UUID, Path(description="The request ID a submission returned.")],
    principal: PrincipalDep,
) -> JSONResponse:
    """Cancel the request; answer its status after (``cancelled``, or as it runs or ended)."""
    rid = str(request_id)
    logger.info("API request: cancel request_id=%s", rid)
    await require_request(service, principal.tenant, rid)
    status = await anyio.to_thread.run_sync(lambda: service.eksops.cancel(rid))
    return JSONResponse(status.model_dump(mode="json"))
