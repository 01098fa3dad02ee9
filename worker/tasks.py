"""The Celery tasks: one per operation, and one for chunks of a bulk submission.

Thin on purpose: a single-request task is its name and one call; its base class does
the rest (``worker.task_base``: execution, retries, errors; ``worker.dispatch``:
parsing and the operation call). Arguments arrive as keyword arguments in the JSON shape of the
request contracts; the request ID is the task ID. A chunk carries many requests of one
operation (``worker.chunks``), each with its own ID, record, lease and result.
"""

from __future__ import annotations

from typing import Any

from worker.celery_app import app
from worker.chunks import run_chunk
from worker.contracts import CHUNK_TASK, Operation
from worker.task_base import OperationTask


@app.task(name=Operation.CREATE_JOB.task_name, base=OperationTask, bind=True)
def create_job(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Create a Job (and its namespace when missing)."""
    return self.execute(arguments)


@app.task(name=Operation.GET_JOB_STATUS.task_name, base=OperationTask, bind=True)
def get_job_status(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Read a Job's state and counters."""
    return self.execute(arguments)


@app.task(name=Operation.DELETE_JOB.task_name, base=OperationTask, bind=True)
def delete_job(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Delete a Job and its pods."""
    return self.execute(arguments)


@app.task(name=Operation.CREATE_NAMESPACE.task_name, base=OperationTask, bind=True)
def create_namespace(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Create a Namespace labelled as managed by eksops."""
    return self.execute(arguments)


@app.task(name=Operation.DELETE_NAMESPACE.task_name, base=OperationTask, bind=True)
def delete_namespace(self: OperationTask, /, **arguments: Any) -> dict[str, Any]:
    """Delete a Namespace eksops created (or any unprotected one, when allowed)."""
    return self.execute(arguments)


@app.task(name=CHUNK_TASK, bind=True, track_started=False)
def chunk(self: Any, /, **arguments: Any) -> dict[str, Any]:
    """Run the requests of one chunk of a bulk submission, one after the other."""
    return run_chunk(self.backend, str(self.request.id), arguments)
