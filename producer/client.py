"""The producer library: submit operations, poll or wait for their outcome.

    from producer import EksOps

    eksops = EksOps()                       # REDIS_URL etc. from the environment
    sub = eksops.create_job({"spec": {...}}, namespace="batch")
    status = eksops.wait(sub.request_id, timeout=60)
    result = eksops.result(sub.request_id, timeout=60)   # raises the eksops error on failure

Every request is validated with the worker's own contracts before anything is written,
so invalid input raises :class:`worker.errors.InvalidRequest` and is never enqueued. A
caller-supplied ``request_id`` makes submission idempotent: submitting it again returns
the same request (``duplicate=True``) without a second task.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from celery import Celery
from pydantic import BaseModel, ValidationError

from producer.enqueue import Enqueuer, Outgoing
from producer.queue import make_app, make_redis
from producer.settings import ProducerSettings
from producer.status import read_status
from worker.contracts import ClusterRef, Operation, RequestState, RequestStatus, explain
from worker.errors import EksOpsError, InvalidRequest, NotFound, error_from_info
from worker.logs import bound_request
from worker.names import NameError_, normalise_request_id
from worker.settings import QueueSettings
from worker.timestamps import now_iso

logger = logging.getLogger(__name__)


class Submission(BaseModel):
    """What a caller gets back from a submit: the request ID to poll."""

    request_id: str
    operation: Operation
    duplicate: bool = False
    submitted_at: str


def describe(arguments: Mapping[str, Any]) -> str:
    """Return the seed's ``key=value`` summary of a request, without the manifest body."""
    parts = []
    if "job_manifest" in arguments:
        name = (arguments["job_manifest"].get("metadata") or {}).get("name")
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


class EksOps:
    """A connection to the eksops queue. Thread-safe; reuse one per process."""

    def __init__(
        self,
        *,
        settings: ProducerSettings | None = None,
        queue: QueueSettings | None = None,
        app: Celery | None = None,
        redis: Any = None,
    ) -> None:
        self.settings = settings or ProducerSettings()
        self.queue = queue or QueueSettings()
        self.queue.require_urls()
        self.app = app or make_app(self.queue)
        self.redis = redis if redis is not None else make_redis(self.queue)
        self._enqueuer = Enqueuer(
            self.app, self.redis, record_ttl_seconds=self.queue.result_expires_seconds
        )

    # --- validation and submission ------------------------------------------------

    def validate(self, operation: Operation, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``arguments`` as the worker will receive them, or raise InvalidRequest."""
        try:
            request = operation.request_model.model_validate(
                dict(arguments), context=self.settings.limits.as_context()
            )
        except ValidationError as exc:
            raise InvalidRequest(explain(exc, what=f"{operation.value} request")) from None
        return request.model_dump(mode="json", exclude_none=True, exclude_defaults=False)

    @staticmethod
    def request_id_for(request_id: str | None) -> str:
        """Return the caller's request ID in canonical form, or a new one."""
        if request_id is None:
            return str(uuid.uuid4())
        try:
            return normalise_request_id(request_id)
        except NameError_ as exc:
            raise InvalidRequest(str(exc)) from None

    def submit(
        self, operation: Operation, arguments: Mapping[str, Any], *, request_id: str | None = None
    ) -> Submission:
        """Validate and enqueue one operation; return its request ID."""
        rid = self.request_id_for(request_id)
        with bound_request(rid):
            kwargs = self.validate(operation, arguments)
            submitted_at = now_iso()
            (accepted,) = self._enqueuer.enqueue(
                [Outgoing(rid, operation.task_name, kwargs)], submitted_at=submitted_at
            )
            if accepted:
                logger.info("Submitted %s %s", operation.value, describe(kwargs))
            else:
                logger.info(
                    "Request was already submitted; not enqueued again (%s)", operation.value
                )
        return Submission(
            request_id=rid, operation=operation, duplicate=not accepted, submitted_at=submitted_at
        )

    def create_job(
        self,
        job_manifest: Mapping[str, Any],
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
    ) -> Submission:
        """Submit the creation of a Job (namespace created if missing)."""
        return self.submit(
            Operation.CREATE_JOB,
            _with_cluster({"job_manifest": job_manifest, "namespace": namespace}, cluster),
            request_id=request_id,
        )

    def get_job_status(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
    ) -> Submission:
        """Submit a read of a Job's state."""
        return self.submit(
            Operation.GET_JOB_STATUS,
            _with_cluster({"job_name": job_name, "namespace": namespace}, cluster),
            request_id=request_id,
        )

    def delete_job(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
    ) -> Submission:
        """Submit the deletion of a Job and its pods."""
        return self.submit(
            Operation.DELETE_JOB,
            _with_cluster({"job_name": job_name, "namespace": namespace}, cluster),
            request_id=request_id,
        )

    def create_namespace(
        self,
        namespace_name: str,
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
    ) -> Submission:
        """Submit the creation of a Namespace."""
        return self.submit(
            Operation.CREATE_NAMESPACE,
            _with_cluster({"namespace_name": namespace_name}, cluster),
            request_id=request_id,
        )

    def delete_namespace(
        self,
        namespace_name: str,
        *,
        allow_unmanaged: bool = False,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
    ) -> Submission:
        """Submit the deletion of a Namespace (never a protected one)."""
        return self.submit(
            Operation.DELETE_NAMESPACE,
            _with_cluster(
                {"namespace_name": namespace_name, "allow_unmanaged": allow_unmanaged}, cluster
            ),
            request_id=request_id,
        )

    # --- polling ------------------------------------------------------------------

    def status(self, request_id: str) -> RequestStatus:
        """Return where ``request_id`` is now; ``unknown`` if it was never submitted."""
        rid = self.request_id_for(request_id)
        return read_status(redis=self.redis, backend=self.app.backend, request_id=rid)

    def wait(self, request_id: str, timeout: float) -> RequestStatus:
        """Poll until the request ends or ``timeout`` seconds pass; return the last status."""
        deadline = time.monotonic() + min(timeout, self.settings.wait_max_seconds)
        delay = self.settings.wait_poll_min_seconds
        while True:
            status = self.status(request_id)
            remaining = deadline - time.monotonic()
            if status.state.is_terminal or remaining <= 0:
                return status
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.settings.wait_poll_max_seconds)

    def result(self, request_id: str, timeout: float) -> dict[str, Any]:
        """Wait for the request and return its result; raise its error if it failed."""
        status = self.wait(request_id, timeout)
        if status.state is RequestState.SUCCEEDED:
            return status.result or {}
        if status.state is RequestState.FAILED and status.error is not None:
            raise error_from_info(status.error)
        if status.state is RequestState.UNKNOWN:
            raise NotFound(
                f"Request {status.request_id} is unknown: never submitted, or its result expired",
                code="UnknownRequest",
            )
        raise TimeoutError(
            f"Request {status.request_id} is still {status.state.value} after {timeout}s"
        )

    def close(self) -> None:
        """Release the Redis connections."""
        self.redis.close()
        self.app.close()


def _with_cluster(arguments: dict[str, Any], cluster: ClusterRef | None) -> dict[str, Any]:
    if cluster is not None:
        arguments["cluster"] = cluster.model_dump(exclude_none=True)
    return arguments


__all__ = ["EksOps", "EksOpsError", "Submission"]
