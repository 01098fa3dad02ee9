"""From a request's arguments to one operation call: the body of every task.

Validates the arguments with the same contracts producers used (a message can reach
the queue by other means), resolves the request's cluster, calls the one operation and
returns its result as JSON-ready data. Used by single-request tasks and by chunks.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from worker import operations
from worker.contracts import (
    CreateJobRequest,
    CreateNamespaceRequest,
    DeleteNamespaceRequest,
    JobRef,
    Operation,
    explain,
)
from worker.errors import InvalidRequest
from worker.runtime import runtime


def parse(operation: Operation, arguments: dict[str, Any]) -> Any:
    """Validate ``arguments`` against the operation's contract, as producers did."""
    try:
        return operation.request_model.model_validate(
            arguments, context=runtime().settings.limits.as_context()
        )
    except ValidationError as exc:
        raise InvalidRequest(explain(exc, what=f"{operation.task_name} request")) from None


def execute(
    operation: Operation, arguments: dict[str, Any], *, request_id: str, attempt: int
) -> dict[str, Any]:
    """Run ``operation`` for one request and return the seed's response body."""
    request = parse(operation, arguments)
    cluster = runtime().clusters.get(request.cluster)
    if isinstance(request, CreateJobRequest):
        result: Any = operations.create_job(
            cluster=cluster,
            request_id=request_id,
            manifest=request.job_manifest,
            namespace=request.namespace,
        )
    elif isinstance(request, JobRef) and operation is Operation.GET_JOB_STATUS:
        result = operations.get_job_status(
            cluster=cluster, name=request.job_name, namespace=request.namespace
        )
    elif isinstance(request, JobRef):
        result = operations.delete_job(
            cluster=cluster, name=request.job_name, namespace=request.namespace, attempt=attempt
        )
    elif isinstance(request, CreateNamespaceRequest):
        result = operations.create_namespace(
            cluster=cluster, request_id=request_id, name=request.namespace_name
        )
    elif isinstance(request, DeleteNamespaceRequest):
        result = operations.delete_namespace(
            cluster=cluster,
            name=request.namespace_name,
            allow_unmanaged=request.allow_unmanaged,
            protected=runtime().settings.protected_namespaces,
            attempt=attempt,
        )
    else:  # pragma: no cover - every contract is handled above
        raise InvalidRequest(f"No operation for {operation.task_name}")
    return dict(result.model_dump(mode="json"))
