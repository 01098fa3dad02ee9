"""Bodies the gateway answers with beyond the seed's own: 202, errors, health.

The seed's success bodies are the shared result contracts (``worker.contracts``) and
the request bodies are the shared request contracts; only what the queue adds (a
request ID to poll, a structured error, broker health) is defined here. These models
document the OpenAPI schema; the routes build plain JSON of the same shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from producer.batches import BatchSubmission
from worker.errors import ErrorInfo

TASKS_PATH = "/api/tasks"


def status_url(request_id: str) -> str:
    """Return where a request's status is polled, relative to the gateway's root."""
    return f"{TASKS_PATH}/{request_id}"


class Accepted(BaseModel):
    """202: the request is queued; poll ``status_url`` (also in ``Location``)."""

    request_id: str = Field(description="The request ID (a UUID); also the X-Request-ID header.")
    status_url: str = Field(
        description="Relative URL of GET /api/tasks/{request_id}, resolved against the gateway."
    )


class ErrorBody(BaseModel):
    """Every error answer: the seed's ``detail`` sentence, plus what the queue knows."""

    detail: str = Field(description="One sentence saying what went wrong (the seed's text).")
    request_id: str | None = Field(
        default=None, description="The request that failed, when one was enqueued."
    )
    error: ErrorInfo | None = Field(
        default=None, description="The worker's structured error, when the request failed."
    )
    submission: BatchSubmission | None = Field(
        default=None,
        description=(
            "A bulk submit that Redis interrupted: each item's request ID and whether it was "
            "enqueued. Resubmit with the same batch_id and these request IDs: only the "
            "missing items are enqueued."
        ),
    )


class ClusterAccess(BaseModel):
    """What the workers found when they last checked their access to a cluster."""

    cluster: str = Field(description="name@region")
    worker: str = Field(description="The worker host that checked.")
    check: Literal["pass", "fail", "unknown"] = Field(
        description="unknown: no worker has checked for three of its intervals"
    )
    checked_at: str
    failed: list[str] = Field(
        default_factory=list,
        description="The steps that failed (eksops doctor on a worker host says why).",
    )


class TrackerState(BaseModel):
    """Whether a cluster's job tracker follows its Jobs now (job status without API calls)."""

    cluster: str = Field(description="name@region")
    current: bool = Field(
        description="The tracker's watch is up and it was heard from within 10 s: job "
        "status is answered from its records. Otherwise through the queue, as a read."
    )
    state: str = Field(description="watching, listing, backoff, or not tracked")
    heartbeat_age_seconds: float | None = None
    holder: str | None = Field(default=None, description="host:pid of the tracking worker")


class LaneState(BaseModel):
    """One lane of the queue: what waits, how long the oldest has, what workers hold."""

    lane: Literal["interactive", "bulk"]
    waiting: int = Field(description="Messages waiting (a chunk message carries many requests).")
    oldest_age_seconds: float | None = Field(
        description="How long the next message to be taken has waited; null when none waits."
    )
    held: int = Field(description="Messages taken by workers and not acknowledged yet.")
    groups: int | None = Field(
        default=None, description="Bulk groups (batches) with messages waiting (bulk lane)."
    )


class LimiterView(BaseModel):
    """One cluster's fleet-wide API limiter, as of now."""

    cluster: str = Field(description="name@region")
    tokens: float | None = Field(description="Tokens left; null before the first call.")
    rate_per_second: float | None
    burst: float | None
    in_flight: int = Field(description="Calls holding an in-flight slot.")
    waiting: int = Field(description="Callers in line for a slot.")
    paused_for_seconds: float = Field(description="Left of the fleet-wide pause after a 429.")


class QueueState(BaseModel):
    """The backlog: per lane, then the workers and each cluster's limiter."""

    lanes: list[LaneState]
    oldest_held_seconds: float | None = Field(
        description="How long the longest-held unacknowledged message has been held."
    )
    live_workers: int = Field(description="Workers that announced themselves in the last 15 s.")
    clusters: list[LimiterView] = Field(default_factory=list)


class Health(BaseModel):
    """``GET /health``: the seed's fields plus the queue's state."""

    status: Literal["healthy", "degraded", "unhealthy"] = Field(
        description="healthy: Redis answers, a worker is live and the workers reach their "
        "cluster; degraded: no live worker (requests queue up) or the workers' last check "
        "of their cluster failed; unhealthy: Redis is unreachable (HTTP 503)."
    )
    cluster: str | None = Field(description="EKS_CLUSTER_NAME as configured for the gateway.")
    region: str | None = Field(description="EKS_REGION as configured for the gateway.")
    broker: Literal["reachable", "unreachable"]
    workers: int | None = Field(
        description="Workers that answered a ping (cached a few seconds); null if unknown."
    )
    clusters: list[ClusterAccess] = Field(
        default_factory=list,
        description="Each cluster's access as the workers last checked it (WORKER_PREFLIGHT).",
    )
    trackers: list[TrackerState] = Field(
        default_factory=list, description="Each cluster's job tracker, as it last reported."
    )
    queues: QueueState | None = Field(
        default=None, description="The backlog per lane and each cluster's limiter; null if unread."
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return OpenAPI ``responses`` entries for ``codes``, each an :class:`ErrorBody`."""
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


_ERROR_TEXT = {
    400: "The Kubernetes API refused the request as malformed.",
    401: "Missing or invalid API key.",
    403: "The worker refused the operation (protected or unmanaged namespace).",
    404: "The job, namespace or request does not exist.",
    409: "The object already exists, or the request ID was used for another operation.",
    413: "The request body is larger than GATEWAY_MAX_BODY_BYTES.",
    422: "Invalid input (the detail names the field); nothing was enqueued.",
    500: "The operation failed in the cluster or the worker (seed texts).",
    503: "Redis (the queue) is unreachable; retry later.",
    504: "A worker started the request but no outcome was stored; check before resubmitting.",
}
