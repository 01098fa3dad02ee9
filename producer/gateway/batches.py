"""Bulk submission over HTTP: ``POST /api/eks-create-jobs``, ``/api/batches/{id}`` and its control.

Batch schedulers send thousands of Jobs in one request. Each item is the seed's
create-job body (``{"job_manifest": ..., "namespace": ...}``), optionally with its own
``request_id`` for idempotent resubmission. Items are validated one by one: bad ones
come back with their index and the reason, good ones are enqueued (pipelined, see
``producer.enqueue``) and each stays pollable at ``/api/tasks/{request_id}``. The
batch itself is polled at ``/api/batches/{batch_id}``: counts by state and the failed
items with their errors. Bodies may be larger here (``GATEWAY_MAX_BULK_BYTES``).
``DELETE /api/batches/{id}`` cancels what of a batch has not started (``?delete_jobs``
also deletes the Jobs it made); ``POST /api/batches/{id}/retry-failed`` submits its
failed requests again as a new batch linked to it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from producer.batches import FAILED_SHOWN, BatchStatus, BatchSubmission
from producer.cancel import BatchCancellation
from producer.gateway.errors import error_body
from producer.gateway.ownership import owns_batch, require_batch
from producer.gateway.params import GatewayDep, PrincipalDep
from producer.gateway.routes import read_json
from producer.gateway.schemas import error_responses, status_url
from producer.gateway.service import Gateway
from worker.contracts import Operation
from worker.delivery import lanes
from worker.errors import InvalidRequest
from worker.logs import bound_request
from worker.tenants import Tenant

logger = logging.getLogger(__name__)

router = APIRouter(tags=["batches"])

BATCHES_PATH = "/api/batches"
BULK_CREATE_JOBS_PATH = "/api/eks-create-jobs"


def batch_url(batch_id: str) -> str:
    """Return where a batch is polled, relative to the gateway's root."""
    return f"{BATCHES_PATH}/{batch_id}"


class BulkItem(BaseModel):
    """One item's outcome: its request ID and status URL, or why it was refused."""

    index: int
    request_id: str | None = None
    status_url: str | None = None
    duplicate: bool = False
    error: str | None = None


class BulkAccepted(BaseModel):
    """202: the batch is queued; poll ``status_url`` (also in ``Location``)."""

    batch_id: str
    status_url: str = Field(description="Relative URL of GET /api/batches/{batch_id}.")
    accepted: int
    duplicates: int
    rejected: int
    items: list[BulkItem]


class BulkCreateJobs(BaseModel):
    """The body: create-job items, and optionally the batch ID to use (a UUID)."""

    jobs: list[dict[str, Any]] = Field(
        description='Each item as POST /api/eks-create-job\'s body, plus an optional "request_id".',
        examples=[
            [
                {
                    "job_manifest": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [{"name": "c", "image": "busybox"}],
                                    "restartPolicy": "Never",
                                }
                            }
                        }
                    },
                    "namespace": "batch",
                }
            ]
        ],
    )
    batch_id: str | None = None
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="POST the end of each of the batch's requests and Jobs to this http(s) "
        "URL as signed JSON (see ?callback_url of POST /api/eks-create-job).",
    )


@router.post(
    BULK_CREATE_JOBS_PATH,
    status_code=202,
    response_model=BulkAccepted,
    responses=error_responses(413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BulkCreateJobs.model_json_schema()}},
        }
    },
    summary="Create many Jobs at once, as one batch",
)
async def create_jobs(
    request: Request, service: GatewayDep, principal: PrincipalDep
) -> JSONResponse:
    """Body: ``{"jobs": [{"job_manifest": {...}, "namespace": "..."}, ...]}``."""
    body = await read_json(request)
    unknown = set(body) - set(BulkCreateJobs.model_fields)
    if unknown:
        raise InvalidRequest(
            f"Invalid request body: unknown field(s) {sorted(unknown)} "
            f"(expected {', '.join(BulkCreateJobs.model_fields)})"
        )
    jobs = body.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise InvalidRequest(
            "Invalid request body: jobs must be a non-empty list of create-job bodies"
        )
    limit = service.settings.gateway_max_bulk_items
    if len(jobs) > limit:
        raise InvalidRequest(
            f"Invalid request body: {len(jobs)} jobs; the limit is {limit} (GATEWAY_MAX_BULK_ITEMS)"
        )
    items = [job if isinstance(job, dict) else {"job_manifest": job} for job in jobs]
    logger.info("API request: create_jobs count=%d", len(items))
    batch_id = body.get("batch_id")
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise InvalidRequest("Invalid request body: callback_url must be a string (a URL)")
    # Submitting and building the answer (tens of thousands of items) happen off the
    # event loop, which keeps serving polls, waits and health checks meanwhile.
    return await anyio.to_thread.run_sync(
        lambda: _submit_jobs(
            service,
            items,
            batch_id=batch_id,
            callback_url=callback_url,
            tenant=principal.tenant,
            request=request,
        )
    )


def _submit_jobs(
    service: Gateway,
    items: list[Any],
    *,
    batch_id: Any,
    callback_url: str | None,
    tenant: Tenant,
    request: Request,
) -> JSONResponse:
    submission = service.eksops.submit_many(
        Operation.CREATE_JOB, items, batch_id=batch_id, callback_url=callback_url, tenant=tenant
    )
    request.state.target = f"batch {submission.batch_id} ({len(items)} items)"
    return _accepted(submission)


def _accepted(submission: BatchSubmission) -> JSONResponse:
    answer = BulkAccepted(
        batch_id=submission.batch_id,
        status_url=batch_url(submission.batch_id),
        accepted=submission.accepted,
        duplicates=submission.duplicates,
        rejected=submission.rejected,
        items=[
            BulkItem(
                index=item.index,
                request_id=item.request_id,
                status_url=status_url(item.request_id) if item.request_id else None,
                duplicate=item.duplicate,
                error=item.error,
            )
            for item in submission.items
        ],
    )
    with bound_request(submission.batch_id):
        logger.info(
            "Batch enqueued: %d accepted, %d duplicates, %d rejected",
            answer.accepted,
            answer.duplicates,
            answer.rejected,
        )
    if not answer.accepted and not answer.duplicates:
        return JSONResponse(
            {**error_body("No job in the batch was valid"), **answer.model_dump(mode="json")},
            status_code=422,
        )
    return JSONResponse(
        answer.model_dump(mode="json"), status_code=202, headers={"Location": answer.status_url}
    )


@router.get(
    BATCHES_PATH + "/{batch_id}",
    response_model=BatchStatus,
    responses=error_responses(404, 422, 503),
    summary="Poll a batch: counts by state and the failed items",
)
async def get_batch(
    service: GatewayDep,
    batch_id: Annotated[uuid.UUID, Path(description="The batch ID a bulk submission returned.")],
    failed_limit: Annotated[
        int,
        Query(
            ge=0,
            le=10_000,
            description="How many failed items to list, first submitted first; "
            "counts.failed is the total.",
        ),
    ] = FAILED_SHOWN,
    *,
    principal: PrincipalDep,
) -> JSONResponse:
    """Return the batch's counts by state; 404 if it was never submitted or has expired.

    Another tenant's batch answers the same 404.
    """
    bid = str(batch_id)
    status = None
    if await owns_batch(service, principal.tenant, bid):
        status = await anyio.to_thread.run_sync(
            lambda: service.eksops.batch(bid, failed_limit=failed_limit)
        )
    if status is None:
        return JSONResponse(
            error_body(f"Batch {bid} not found: never submitted, or it expired"), status_code=404
        )
    return JSONResponse(status.model_dump(mode="json"))


@router.delete(
    BATCHES_PATH + "/{batch_id}",
    response_model=BatchCancellation,
    responses=error_responses(404, 422, 503),
    summary="Cancel a batch: its requests that have not started never run",
)
async def cancel_batch(
    service: GatewayDep,
    batch_id: Annotated[uuid.UUID, Path(description="The batch ID a bulk submission returned.")],
    delete_jobs: Annotated[
        bool,
        Query(
            description="Also delete the Jobs the batch created (a new batch of delete-job "
            "requests, after its running requests end)."
        ),
    ] = False,
    *,
    principal: PrincipalDep,
) -> JSONResponse:
    """Cancel the batch; answer how many were cancelled, running, ended."""
    bid = str(batch_id)
    logger.info("API request: cancel batch_id=%s delete_jobs=%s", bid, delete_jobs)
    await require_batch(service, principal.tenant, bid)
    done = await anyio.to_thread.run_sync(
        lambda: service.eksops.cancel_batch(bid, delete_jobs=delete_jobs, tenant=principal.tenant)
    )
    return JSONResponse(done.model_dump(mode="json"))


@router.post(
    BATCHES_PATH + "/{batch_id}/retry-failed",
    status_code=202,
    response_model=BulkAccepted,
    responses=error_responses(404, 409, 422, 503),
    summary="Submit a batch's failed requests again, as a new batch linked to it",
)
async def retry_failed(
    service: GatewayDep,
    batch_id: Annotated[uuid.UUID, Path(description="The batch ID a bulk submission returned.")],
    priority: Annotated[
        int, Query(ge=1, le=lanes.MAX_WEIGHT, description="The new batch's share (1 to 10).")
    ] = 1,
    *,
    principal: PrincipalDep,
) -> JSONResponse:
    """202 with the new batch (its ``retry_of`` names this one); 409 if nothing failed."""
    bid = str(batch_id)
    logger.info("API request: retry_failed batch_id=%s", bid)
    await require_batch(service, principal.tenant, bid)
    submission = await anyio.to_thread.run_sync(
        lambda: service.eksops.retry_failed(bid, priority=priority, tenant=principal.tenant)
    )
    return _accepted(submission)
