"""What travels between producers and workers: task names, requests, results, states.

Producers (library, CLI, gateway) and workers validate with these same models, so a
request that would fail on the worker for its shape fails in the producer instead and
is never enqueued. Pure pydantic: no kubernetes, boto3 or Celery imports (an
import-linter contract checks it). Result models keep the seed API's response shapes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from worker.errors import ErrorInfo, InvalidManifest, InvalidName
from worker.manifests import DEFAULT_MAX_MANIFEST_BYTES, validate_job_manifest
from worker.names import (
    check_dns1123_label,
    check_tenant_name,
    normalise_request_id,
    protection_reason,
)

QUEUE = "eksops"
TASK_PREFIX = "eksops."
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "eksops"
REQUEST_ID_LABEL = "eksops.io/request-id"
TENANT_LABEL = "eksops.io/tenant"

_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}")


@dataclass(frozen=True)
class Limits:
    """Producer/worker-side limits applied while validating a request."""

    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    protected_namespaces: tuple[str, ...] = field(default_factory=tuple)

    def as_context(self) -> dict[str, Any]:
        """Return the pydantic validation context carrying these limits."""
        return {"limits": self}


def _limits(info: ValidationInfo) -> Limits:
    context = info.context or {}
    limits = context.get("limits")
    return limits if isinstance(limits, Limits) else Limits()


def _uuid(value: str) -> str:
    try:
        return normalise_request_id(value)
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


def _label(field_name: str) -> AfterValidator:
    def check(value: str) -> str:
        try:
            return check_dns1123_label(value, field=field_name)
        except InvalidName as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(check)


NamespaceName = Annotated[str, _label("namespace")]
JobName = Annotated[str, _label("job_name")]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ClusterRef(_Contract):
    """An EKS cluster other than the worker's default (or a kubeconfig context)."""

    name: str
    region: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _CLUSTER_NAME.fullmatch(value):
            raise ValueError(
                f"cluster name {value!r} is not a valid EKS cluster name "
                "(1-100 letters, digits, '-' or '_', starting with a letter or digit)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            raise ValueError(f"region {value!r} is not an AWS region name such as us-east-1")
        return value


def _tenant(value: str) -> str:
    try:
        return check_tenant_name(value)
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


class _Request(_Contract):
    cluster: ClusterRef | None = None
    # The tenant the request is made for (set by producers, see ``worker.tenants``):
    # what it creates is labelled with it, another tenant's objects read as not found.
    tenant: Annotated[str, AfterValidator(_tenant)] | None = None


class CreateJobRequest(_Request):
    """Create a Job; the namespace is created first if it does not exist."""

    namespace: NamespaceName = "default"
    job_manifest: dict[str, Any]

    @field_validator("job_manifest")
    @classmethod
    def _check_manifest(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        namespace = info.data.get("namespace", "default")
        try:
            return validate_job_manifest(
                value, namespace=namespace, max_bytes=_limits(info).max_manifest_bytes
            )
        except InvalidManifest as exc:
            raise ValueError(str(exc)) from None


class JobRef(_Request):
    """Name a Job to read or delete."""

    job_name: JobName
    namespace: NamespaceName = "default"


class JobLogsRequest(JobRef):
    """Read the logs of a Job's pods: the last ``tail_lines`` of each container."""

    tail_lines: int = Field(default=100, ge=1, le=10_000)


class CreateNamespaceRequest(_Request):
    """Create a Namespace labelled as managed by eksops."""

    namespace_name: Annotated[str, _label("namespace_name")]


class DeleteNamespaceRequest(_Request):
    """Delete a Namespace; protected ones never, unmanaged ones only when allowed."""

    namespace_name: str
    allow_unmanaged: bool = False

    @field_validator("namespace_name")
    @classmethod
    def _check_not_protected(cls, value: str, info: ValidationInfo) -> str:
        reason = protection_reason(value, _limits(info).protected_namespaces)
        if reason:
            raise ValueError(
                f"namespace {value.strip()!r} is protected ({reason}); refusing to delete it"
            )
        try:
            return check_dns1123_label(value, field="namespace_name")
        except InvalidName as exc:
            raise ValueError(str(exc)) from None


class Operation(enum.StrEnum):
    """The operations eksops runs; each is one Celery task (see ``worker.catalog``)."""

    CREATE_JOB = "create_job"
    GET_JOB_STATUS = "get_job_status"
    DELETE_JOB = "delete_job"
    CREATE_NAMESPACE = "create_namespace"
    DELETE_NAMESPACE = "delete_namespace"
    GET_JOB_LOGS = "get_job_logs"

    @property
    def task_name(self) -> str:
        """Return the Celery task name producers enqueue by."""
        return TASK_PREFIX + self.value

    @classmethod
    def from_task_name(cls, name: str) -> Operation:
        """Return the operation of a task name, e.g. ``eksops.create_job``."""
        return cls(name.removeprefix(TASK_PREFIX))


# A chunk of a bulk submission: many requests of one operation in one message, so a
# burst pays Celery's per-message cost once per chunk rather than once per request.
CHUNK_TASK = TASK_PREFIX + "chunk"
CHUNK_MAX_ITEMS = 16


class ChunkItem(_Contract):
    """One request inside a chunk: its own ID, and its operation's arguments."""

    request_id: Annotated[str, AfterValidator(_uuid)]
    arguments: dict[str, Any]


class Chunk(_Contract):
    """The arguments of a chunk message."""

    operation: Operation
    # Each a ChunkItem, validated one by one by the worker (``worker.chunks``): one
    # malformed request fails alone. Producers send at most CHUNK_MAX_ITEMS.
    items: list[Any] = Field(min_length=1)


# --- results: the seed's response bodies -------------------------------------------

JobState = Literal["pending", "running", "suspended", "completed", "failed", "unknown"]


class JobCreated(_Contract):
    """Seed response of create-job."""

    job_name: str
    namespace: str
    creation_timestamp: str
    status: Literal["created"] = "created"


class JobStatus(_Contract):
    """Seed response of get-job-status."""

    job_name: str
    namespace: str
    state: JobState
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    start_time: str | None = None
    completion_time: str | None = None


class ContainerLog(_Contract):
    """The last lines one container of one pod printed."""

    pod: str
    container: str
    lines: list[str]
    truncated: bool = False
    error: str | None = None


class JobLogs(_Contract):
    """The logs of a Job's pods (newest pods first), or the tail eksops captured."""

    job_name: str
    namespace: str
    logs: list[ContainerLog]
    source: Literal["cluster", "tracker"] = "cluster"


class Deleted(_Contract):
    """Seed response of delete-job and delete-namespace."""

    message: str
    status: Literal["success"] = "success"


class NamespaceCreated(_Contract):
    """Seed response of create-namespace."""

    namespace_name: str
    creation_timestamp: str
    status: Literal["created"] = "created"


# --- what a poller sees ------------------------------------------------------------


class RequestState(enum.StrEnum):
    """Where a request is; ``unknown`` means it was never submitted (or expired)."""

    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # cancelled before it ran; it never will
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Return whether the request will not change state any more."""
        return self in (
            RequestState.SUCCEEDED,
            RequestState.FAILED,
            RequestState.CANCELLED,
            RequestState.UNKNOWN,
        )


class CallbackDelivery(_Contract):
    """How the POST of one terminal transition to a submission's ``callback_url`` went."""

    state: Literal["pending", "delivered", "failed"]
    attempts: int = Field(default=0, ge=0)
    error: str | None = None  # the last attempt's, while pending; the final one when failed
    at: str | None = None  # when the last attempt ended


class RequestStatus(_Contract):
    """Everything a caller can learn about a request by its ID.

    ``callbacks`` says, per transition POSTed to ``callback_url`` (``request``: the
    request's end; ``job``: its Job's end), how the delivery went.
    """

    request_id: str
    state: RequestState
    operation: str | None = None
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = Field(default=0, ge=0)
    callback_url: str | None = None
    callbacks: dict[Literal["request", "job"], CallbackDelivery] = Field(default_factory=dict)
    tenant: str | None = None  # the tenant that submitted it (none: a trusted producer)
