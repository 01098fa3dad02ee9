"""The six operations, declared once: everything each producer and the worker need.

One :class:`Spec` per operation names its arguments model, its result model, the
function the worker calls (by import path, so this module stays pure and producers
never import cluster code) and how its validated arguments bind to that function's
keywords, the Celery task name, the CLI command with its inputs and help, the gateway
route, and the seed's texts (what the gateway's log lines and error details say).
The worker registers its tasks and dispatches from here; the CLI builds its commands
and the gateway its routes from here; the library's methods are checked against it.
Adding an operation is adding a :class:`Spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from worker.contracts import (
    CreateJobRequest,
    CreateNamespaceRequest,
    Deleted,
    DeleteNamespaceRequest,
    JobCreated,
    JobLogs,
    JobLogsRequest,
    JobRef,
    JobStatus,
    NamespaceCreated,
    Operation,
)
from worker.jobrecords import job_key


@dataclass(frozen=True)
class Run:
    """What an operation learns about the request it runs, beside its arguments."""

    request_id: str
    attempt: int = 1
    protected_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class CliInput:
    """How one argument is given on the command line.

    ``kind``: ``argument`` (positional), ``option`` (``--name VALUE``), ``flag``
    (``--name``), or ``manifest`` (``-f FILE``: a YAML or JSON document, ``-`` for stdin).
    """

    field: str
    kind: Literal["argument", "option", "flag", "manifest"]
    help: str = ""
    short: str | None = None


@dataclass(frozen=True)
class Route:
    """The seed API's endpoint: method and path; arguments in the body or the query."""

    method: Literal["GET", "POST", "DELETE"]
    path: str
    summary: str
    # What the endpoint answers besides 200/422/500/503 (for the OpenAPI schema).
    errors: tuple[int, ...] = ()

    @property
    def takes_body(self) -> bool:
        """Return whether the arguments travel as a JSON body (else as query parameters)."""
        return self.method == "POST"


@dataclass(frozen=True)
class SeedTexts:
    """What the seed API said about this operation (``{field}`` from arguments and result)."""

    doing: str  # "creating job": the gateway's failure lines
    succeeded: str  # the gateway's success line
    log_fields: tuple[tuple[str, str], ...]  # the "API request:" line: (label, field)
    not_found: str | None = None  # the 404 detail when the object is missing
    detail: str | None = None  # a DEBUG line before the success line


@dataclass(frozen=True)
class Spec:
    """One operation, everything about it."""

    operation: Operation
    request: type[BaseModel]
    result: type[BaseModel]
    function: str  # "module:function" in the worker's operations
    bind: Callable[[Any, Run], dict[str, Any]]  # validated request + run -> keywords
    summary: str  # one line: CLI help, library docstring, task docstring
    command: str  # CLI command name
    inputs: tuple[CliInput, ...]
    route: Route
    seed: SeedTexts
    # What a success links the request record to: result + cluster key -> fields.
    links: Callable[[Mapping[str, Any], str], dict[str, str]] | None = None
    # Answered from the job tracker's record when it covers the cluster (no queue).
    reads_record: bool = False
    # Callers may wait for the Job itself to end (?wait_for=complete, --wait-for).
    waits_for_job: bool = False

    @property
    def task_name(self) -> str:
        """Return the Celery task name producers enqueue by."""
        return self.operation.task_name

    def with_defaults(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``arguments`` with the contract's defaults for what they leave out."""
        defaults = {
            name: field.default
            for name, field in self.request.model_fields.items()
            if not field.is_required() and field.default is not None
        }
        return {**defaults, **arguments}


_NAMESPACE = CliInput("namespace", "option", "Kubernetes namespace of the Job.", short="-n")
_JOB_NAME = CliInput("job_name", "argument", "Name of the Job.")

CATALOG: dict[Operation, Spec] = {
    spec.operation: spec
    for spec in (
        Spec(
            operation=Operation.CREATE_JOB,
            request=CreateJobRequest,
            result=JobCreated,
            function="worker.operations.jobs:create_job",
            bind=lambda r, run: {
                "request_id": run.request_id,
                "manifest": r.job_manifest,
                "namespace": r.namespace,
                "tenant": r.tenant,
            },
            summary="Create a Job (its namespace is created if missing).",
            command="create-job",
            inputs=(
                CliInput(
                    "job_manifest", "manifest", "Job manifest, YAML or JSON ('-': stdin).", "-f"
                ),
                _NAMESPACE,
            ),
            route=Route(
                "POST",
                "/api/eks-create-job",
                "Create a Kubernetes Job (its namespace too, if missing)",
                errors=(400, 404, 409, 413),
            ),
            seed=SeedTexts(
                doing="creating job",
                succeeded="Successfully created job {job_name} in namespace {namespace}",
                log_fields=(("namespace", "namespace"),),
            ),
            links=lambda result, cluster: {
                "job": job_key(cluster, result["namespace"], result["job_name"])
            },
            waits_for_job=True,
        ),
        Spec(
            operation=Operation.GET_JOB_STATUS,
            request=JobRef,
            result=JobStatus,
            function="worker.operations.jobs:get_job_status",
            bind=lambda r, run: {"name": r.job_name, "namespace": r.namespace, "tenant": r.tenant},
            summary="Read a Job's state and counters.",
            command="job-status",
            inputs=(_JOB_NAME, _NAMESPACE),
            route=Route(
                "GET", "/api/eks-get-job-status", "Read a Job's state and counters", errors=(404,)
            ),
            seed=SeedTexts(
                doing="fetching job status",
                succeeded="Successfully retrieved status for job {job_name}",
                log_fields=(("job", "job_name"), ("namespace", "namespace")),
                not_found="Job {job_name} not found in namespace {namespace}",
                detail="Job status: {state} (active={active}, succeeded={succeeded}, "
                "failed={failed})",
            ),
            reads_record=True,
            waits_for_job=True,
        ),
        Spec(
            operation=Operation.DELETE_JOB,
            request=JobRef,
            result=Deleted,
            function="worker.operations.jobs:delete_job",
            bind=lambda r, run: {
                "name": r.job_name,
                "namespace": r.namespace,
                "attempt": run.attempt,
                "tenant": r.tenant,
            },
            summary="Delete a Job and its pods.",
            command="delete-job",
            inputs=(_JOB_NAME, _NAMESPACE),
            route=Route(
                "DELETE",
                "/api/eks-delete-job",
                "Delete a Job and its pods (Foreground propagation)",
                errors=(404,),
            ),
            seed=SeedTexts(
                doing="deleting job",
                succeeded="Successfully deleted job {job_name} from namespace {namespace}",
                log_fields=(("job", "job_name"), ("namespace", "namespace")),
                not_found="Job {job_name} not found in namespace {namespace}",
            ),
        ),
        Spec(
            operation=Operation.CREATE_NAMESPACE,
            request=CreateNamespaceRequest,
            result=NamespaceCreated,
            function="worker.operations.namespaces:create_namespace",
            bind=lambda r, run: {
                "request_id": run.request_id,
                "name": r.namespace_name,
                "tenant": r.tenant,
            },
            summary="Create a Namespace labelled as managed by eksops.",
            command="create-namespace",
            inputs=(CliInput("namespace_name", "argument", "Name of the Namespace."),),
            route=Route(
                "POST",
                "/api/eks-create-namespace",
                "Create a Namespace",
                errors=(400, 409, 413),
            ),
            seed=SeedTexts(
                doing="creating namespace",
                succeeded="Successfully created namespace {namespace_name}",
                log_fields=(("namespace", "namespace_name"),),
            ),
        ),
        Spec(
            operation=Operation.DELETE_NAMESPACE,
            request=DeleteNamespaceRequest,
            result=Deleted,
            function="worker.operations.namespaces:delete_namespace",
            bind=lambda r, run: {
                "name": r.namespace_name,
                "allow_unmanaged": r.allow_unmanaged,
                "protected": run.protected_namespaces,
                "attempt": run.attempt,
                "tenant": r.tenant,
            },
            summary="Delete a Namespace eksops created (never a protected one).",
            command="delete-namespace",
            inputs=(
                CliInput("namespace_name", "argument", "Name of the Namespace."),
                CliInput(
                    "allow_unmanaged",
                    "flag",
                    "Also delete a namespace eksops did not create (never a protected one).",
                ),
            ),
            route=Route(
                "DELETE",
                "/api/eks-delete-namespace",
                "Delete a Namespace eksops created (never a protected one)",
                errors=(403, 404),
            ),
            seed=SeedTexts(
                doing="deleting namespace",
                succeeded="Successfully deleted namespace {namespace_name}",
                log_fields=(("namespace", "namespace_name"),),
                not_found="Namespace {namespace_name} not found",
            ),
        ),
        Spec(
            operation=Operation.GET_JOB_LOGS,
            request=JobLogsRequest,
            result=JobLogs,
            function="worker.operations.logs:get_job_logs",
            bind=lambda r, run: {
                "name": r.job_name,
                "namespace": r.namespace,
                "tail_lines": r.tail_lines,
                "tenant": r.tenant,
            },
            summary="Read the last lines each container of a Job's newest pods printed.",
            command="job-logs",
            inputs=(
                _JOB_NAME,
                _NAMESPACE,
                CliInput(
                    "tail_lines", "option", "Lines from the end of each container's log.", "--tail"
                ),
            ),
            route=Route(
                "GET",
                "/api/eks-get-job-logs",
                "Read the logs of a Job's pods (or the tail eksops captured)",
                errors=(404,),
            ),
            seed=SeedTexts(
                doing="reading job logs",
                succeeded="Successfully read the logs of job {job_name}",
                log_fields=(("job", "job_name"), ("namespace", "namespace")),
                not_found="Job {job_name} not found in namespace {namespace}",
            ),
        ),
    )
}


def summarise(arguments: Mapping[str, Any]) -> str:
    """Return a request's ``key=value`` summary (job, namespace), never the manifest body.

    What Flower and Celery's log lines show for a task's arguments. Total over any
    arguments: a message built from unvalidated ones still gets a summary, and the
    worker names the problem.
    """
    parts = []
    manifest = arguments.get("job_manifest")
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if name:
        parts.append(f"job={name}")
    for key, label in (
        ("job_name", "job"),
        ("namespace", "namespace"),
        ("namespace_name", "namespace"),
    ):
        if key in arguments:
            parts.append(f"{label}={arguments[key]}")
    return " ".join(parts)


def spec_of(operation: Operation | str) -> Spec:
    """Return the declaration of ``operation`` (an Operation, its value or task name)."""
    if isinstance(operation, str) and not isinstance(operation, Operation):
        operation = Operation.from_task_name(operation)
    return CATALOG[operation]
