"""The five Celery tasks: parse the contract, call one operation, return a dict.

Thin on purpose; everything around the call (logging context, attempts, retries,
error structure) lives in :mod:`worker.task_base`. Arguments arrive as keyword
arguments in the JSON shape of the request contracts; the request ID is the task ID.
"""

from __future__ import annotations

from typing import Any

from worker import operations
from worker.celery_app import app
from worker.contracts import (
    CreateJobRequest,
    CreateNamespaceRequest,
    DeleteNamespaceRequest,
    JobRef,
    Operation,
)
from worker.runtime import runtime
from worker.task_base import OperationTask


@app.task(name=Operation.CREATE_JOB.task_name, base=OperationTask, bind=True)
def create_job(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Create a Job (and its namespace when missing)."""
    request = self.parse(CreateJobRequest, arguments)
    return operations.create_job(
        cluster=self.cluster(request.cluster),
        request_id=self.request_id,
        manifest=request.job_manifest,
        namespace=request.namespace,
    ).model_dump(mode="json")


@app.task(name=Operation.GET_JOB_STATUS.task_name, base=OperationTask, bind=True)
def get_job_status(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Read a Job's state and counters."""
    request = self.parse(JobRef, arguments)
    return operations.get_job_status(
        cluster=self.cluster(request.cluster), name=request.job_name, namespace=request.namespace
    ).model_dump(mode="json")


@app.task(name=Operation.DELETE_JOB.task_name, base=OperationTask, bind=True)
def delete_job(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Delete a Job and its pods."""
    request = self.parse(JobRef, arguments)
    return operations.delete_job(
        cluster=self.cluster(request.cluster),
        name=request.job_name,
        namespace=request.namespace,
        attempt=self.attempt,
    ).model_dump(mode="json")


@app.task(name=Operation.CREATE_NAMESPACE.task_name, base=OperationTask, bind=True)
def create_namespace(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Create a Namespace labelled as managed by eksops."""
    request = self.parse(CreateNamespaceRequest, arguments)
    return operations.create_namespace(
        cluster=self.cluster(request.cluster),
        request_id=self.request_id,
        name=request.namespace_name,
    ).model_dump(mode="json")


@app.task(name=Operation.DELETE_NAMESPACE.task_name, base=OperationTask, bind=True)
def delete_namespace(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Delete a Namespace eksops created (or any unprotected one, when allowed)."""
    request = self.parse(DeleteNamespaceRequest, arguments)
    return operations.delete_namespace(
        cluster=self.cluster(request.cluster),
        name=request.namespace_name,
        allow_unmanaged=request.allow_unmanaged,
        protected=runtime().settings.protected_namespaces,
        attempt=self.attempt,
    ).model_dump(mode="json")
