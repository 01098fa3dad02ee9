"""The seed API's five endpoints, same paths, bodies and parameters, through the queue.

Each endpoint logs the seed's ``API request: ...`` line, hands its input to the
:class:`~producer.gateway.service.Gateway` (validated with the shared contracts; nothing
invalid is enqueued) and answers ``202 Accepted`` with ``{request_id, status_url}`` and
a ``Location`` header. With ``?wait=SECONDS`` it waits for the outcome and answers as
the seed did: 200 with the seed's body, or the seed's status code and ``detail`` text
(see :mod:`producer.gateway.errors`); if the wait runs out, 202 as without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from producer.gateway.errors import error_body, seed_failure
from producer.gateway.params import (
    GatewayDep,
    JobName,
    Namespace,
    NamespaceName,
    RequestIdDep,
    WaitDep,
)
from producer.gateway.schemas import Accepted, error_responses, status_url
from producer.gateway.service import Gateway
from producer.gateway.waiting import WaitFor
from worker.contracts import (
    Deleted,
    JobCreated,
    JobStatus,
    NamespaceCreated,
    Operation,
    RequestState,
)
from worker.errors import InvalidRequest

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

# Final states that carry an error: failed, or started and lost (no outcome stored).
_ENDED_BADLY = (RequestState.FAILED, RequestState.UNKNOWN)
# What the seed's failure lines say the route was doing.
_DOING = {
    Operation.CREATE_JOB: "creating job",
    Operation.GET_JOB_STATUS: "fetching job status",
    Operation.DELETE_JOB: "deleting job",
    Operation.CREATE_NAMESPACE: "creating namespace",
    Operation.DELETE_NAMESPACE: "deleting namespace",
}


def _body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _responses(result: type, *errors: int) -> dict[int | str, dict[str, Any]]:
    ok: dict[int | str, dict[str, Any]] = {
        200: {"model": result, "description": "With ?wait: the seed's response body."}
    }
    # 409 also answers a request ID reused for another operation.
    return {**ok, **error_responses(*sorted({*errors, 409, 422, 500, 503, 504}))}


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


async def _run(
    service: Gateway,
    operation: Operation,
    arguments: Mapping[str, Any],
    rid: str,
    wait: WaitFor | None,
) -> JSONResponse:
    submission = await service.submit(operation, arguments, request_id=rid)
    if wait is None:
        return accepted(submission.request_id)
    status = await service.wait(submission.request_id, wait)
    if status.state is RequestState.SUCCEEDED:
        result = status.result or {}
        _log_success(operation, arguments, result)
        return JSONResponse(result, status_code=200)
    if status.error is not None and status.state in _ENDED_BADLY:
        failure = seed_failure(operation, arguments, status.error)
        logger.error("%s", failure.log_text(_DOING[operation]))
        body = error_body(failure.detail, request_id=submission.request_id, error=failure.error)
        return JSONResponse(body, status_code=failure.status_code)
    logger.info("Request still %s after waiting %ss; answering 202", status.state.value, wait)
    return accepted(submission.request_id)


def _log_success(
    operation: Operation, arguments: Mapping[str, Any], result: Mapping[str, Any]
) -> None:
    if operation is Operation.CREATE_JOB:
        logger.info(
            "Successfully created job %s in namespace %s",
            result.get("job_name"),
            result.get("namespace"),
        )
    elif operation is Operation.GET_JOB_STATUS:
        logger.debug(
            "Job status: %s (active=%s, succeeded=%s, failed=%s)",
            result.get("state"),
            result.get("active"),
            result.get("succeeded"),
            result.get("failed"),
        )
        logger.info("Successfully retrieved status for job %s", arguments["job_name"])
    elif operation is Operation.DELETE_JOB:
        logger.info(
            "Successfully deleted job %s from namespace %s",
            arguments["job_name"],
            arguments["namespace"],
        )
    elif operation is Operation.CREATE_NAMESPACE:
        logger.info("Successfully created namespace %s", result.get("namespace_name"))
    else:
        logger.info("Successfully deleted namespace %s", arguments["namespace_name"])


@router.post(
    "/api/eks-create-job",
    status_code=202,
    response_model=Accepted,
    responses=_responses(JobCreated, 400, 404, 413),
    openapi_extra=_body("CreateJobRequest"),
    summary="Create a Kubernetes Job (its namespace too, if missing)",
)
async def create_job(
    request: Request, service: GatewayDep, rid: RequestIdDep, wait: WaitDep
) -> JSONResponse:
    """Body: ``{"job_manifest": {...}, "namespace": "default"}``, as in the seed."""
    body = await read_json(request)
    logger.info("API request: create_job namespace=%s", shown(body.get("namespace", "default")))
    return await _run(service, Operation.CREATE_JOB, body, rid, wait)


@router.get(
    "/api/eks-get-job-status",
    status_code=202,
    response_model=Accepted,
    responses=_responses(JobStatus, 400, 404),
    summary="Read a Job's state and counters",
)
async def get_job_status(
    service: GatewayDep,
    rid: RequestIdDep,
    job_name: JobName,
    wait: WaitDep,
    namespace: Namespace = "default",
) -> JSONResponse:
    """Query: ``job_name``, ``namespace`` (default ``default``), as in the seed."""
    logger.info(
        "API request: get_job_status job=%s namespace=%s", shown(job_name), shown(namespace)
    )
    arguments = {"job_name": job_name, "namespace": namespace}
    return await _run(service, Operation.GET_JOB_STATUS, arguments, rid, wait)


@router.delete(
    "/api/eks-delete-job",
    status_code=202,
    response_model=Accepted,
    responses=_responses(Deleted, 400, 404),
    summary="Delete a Job and its pods (Foreground propagation)",
)
async def delete_job(
    service: GatewayDep,
    rid: RequestIdDep,
    job_name: JobName,
    wait: WaitDep,
    namespace: Namespace = "default",
) -> JSONResponse:
    """Query: ``job_name``, ``namespace`` (default ``default``), as in the seed."""
    logger.info("API request: delete_job job=%s namespace=%s", shown(job_name), shown(namespace))
    arguments = {"job_name": job_name, "namespace": namespace}
    return await _run(service, Operation.DELETE_JOB, arguments, rid, wait)


@router.post(
    "/api/eks-create-namespace",
    status_code=202,
    response_model=Accepted,
    responses=_responses(NamespaceCreated, 400, 404, 413),
    openapi_extra=_body("CreateNamespaceRequest"),
    summary="Create a Namespace",
)
async def create_namespace(
    request: Request, service: GatewayDep, rid: RequestIdDep, wait: WaitDep
) -> JSONResponse:
    """Body: ``{"namespace_name": "..."}``, as in the seed."""
    body = await read_json(request)
    logger.info("API request: create_namespace namespace=%s", shown(body.get("namespace_name")))
    return await _run(service, Operation.CREATE_NAMESPACE, body, rid, wait)


@router.delete(
    "/api/eks-delete-namespace",
    status_code=202,
    response_model=Accepted,
    responses=_responses(Deleted, 400, 403, 404),
    summary="Delete a Namespace eksops created (never a protected one)",
)
async def delete_namespace(
    service: GatewayDep,
    rid: RequestIdDep,
    namespace_name: NamespaceName,
    wait: WaitDep,
    allow_unmanaged: Annotated[
        bool,
        Query(description="Also delete a namespace eksops did not create (never a protected one)."),
    ] = False,
) -> JSONResponse:
    """Query: ``namespace_name``, as in the seed; ``allow_unmanaged`` is eksops' addition."""
    logger.info("API request: delete_namespace namespace=%s", shown(namespace_name))
    arguments = {"namespace_name": namespace_name, "allow_unmanaged": allow_unmanaged}
    return await _run(service, Operation.DELETE_NAMESPACE, arguments, rid, wait)
