"""The one error tree of eksops.

Every failure an operation can meet ends as one of these classes, built in one place
(``worker.operations.translate``) from Kubernetes, AWS and transport exceptions, so the
libraries' own exceptions never leak into tasks or callers. The tree splits on what a
caller should do next: :class:`TransientError` is retried by the task layer,
:class:`PermanentError` fails at once.

Errors cross the Celery JSON result backend as ``exc_type``/``exc_module``/``exc_message``
(the exception's ``args``). All constructor arguments are therefore positional,
JSON-serialisable and stored in ``args``, so the poller rebuilds the same class with the
same ``code``, ``http_status`` and Kubernetes message. This module is pure: producers
import it to recognise errors read back from the backend, and raise nothing else (their
own failures, a Redis they cannot reach or a configuration they cannot use, are leaves
of this tree too).

The tree::

    EksOpsError
    ├── PermanentError
    │   ├── InvalidRequest ── InvalidName, InvalidManifest
    │   ├── Unauthorized, Forbidden ── ProtectedNamespace, OutOfScope, PolicyViolation
    │   ├── NotFound ── ClusterNotFound, UnknownRequest
    │   ├── Conflict ── RequestIdReused, Cancelled
    │   ├── Gone, Invalid, QuotaExceeded
    │   └── ConfigurationError, ConfigurationInvalid
    └── TransientError
        ├── Throttled, StillRunning
        └── Unavailable ── QueueUnavailable ── EnqueueInterrupted
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ErrorInfo(BaseModel):
    """A failed request's error as it survives the result backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str
    http_status: int
    retryable: bool = False
    details: dict[str, Any] | None = None


class EksOpsError(Exception):
    """Raised when an operation cannot complete; the root of every eksops error."""

    default_code: ClassVar[str] = "InternalError"
    default_http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        http_status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, http_status, code, details, retry_after)
        self.message = message
        self.http_status = http_status or self.default_http_status
        self.code = code or self.default_code
        self.details = details or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)

    def to_info(self) -> ErrorInfo:
        """Return the structured form a poller reads: ``{code, message, http_status}``."""
        return ErrorInfo(
            code=self.code,
            message=self.message,
            http_status=self.http_status,
            retryable=self.retryable,
            details=self.details or None,
        )


class PermanentError(EksOpsError):
    """Raised when repeating the same request cannot succeed; never retried."""


class TransientError(EksOpsError):
    """Raised when the same request may succeed later; retried with backoff."""

    retryable: ClassVar[bool] = True


class InvalidRequest(PermanentError):
    """Raised when a request breaks the contract (bad name, manifest, argument types)."""

    default_code = "BadRequest"
    default_http_status = 400


class InvalidName(InvalidRequest, ValueError):
    """Raised when a name breaks the Kubernetes naming rules; the message says which."""


class InvalidManifest(InvalidRequest, ValueError):
    """Raised when a Job manifest would be rejected; the message names the field."""


class Unauthorized(PermanentError):
    """Raised when the cluster rejects the credentials, even after a fresh token."""

    default_code = "Unauthorized"
    default_http_status = 401


class Forbidden(PermanentError):
    """Raised when the caller's identity may not perform the operation (RBAC, policy)."""

    default_code = "Forbidden"
    default_http_status = 403


class ProtectedNamespace(Forbidden):
    """Raised when a request would delete a namespace eksops must never delete."""

    default_code = "ProtectedNamespace"


class OutOfScope(Forbidden):
    """Raised when a tenant asks for a cluster, namespace or operation outside its scope."""

    default_code = "OutOfScope"


class PolicyViolation(Forbidden):
    """Raised when a Job breaks its tenant's Job policy; the message names the field."""

    default_code = "PolicyViolation"


class QuotaExceeded(PermanentError):
    """Raised when a tenant is over a quota (rate, in flight, bulk size); retry after."""

    default_code = "QuotaExceeded"
    default_http_status = 429


class NotFound(PermanentError):
    """Raised when the named object (job, namespace) does not exist."""

    default_code = "NotFound"
    default_http_status = 404


class ClusterNotFound(NotFound):
    """Raised when EKS knows no cluster of the configured name in the region."""

    default_code = "ClusterNotFound"


class UnknownRequest(NotFound):
    """Raised when a request ID was never submitted, or its record has expired."""

    default_code = "UnknownRequest"


class Conflict(PermanentError):
    """Raised when the object exists already or changed under the request."""

    default_code = "Conflict"
    default_http_status = 409


class RequestIdReused(Conflict):
    """Raised when a request ID already names a request with another operation or arguments."""

    default_code = "RequestIdReused"


class Cancelled(Conflict):
    """The outcome of a request cancelled before it ran (it never will)."""

    default_code = "Cancelled"


class Gone(PermanentError):
    """Raised when the API reports a resource version that has expired."""

    default_code = "Gone"
    default_http_status = 410


class Invalid(PermanentError):
    """Raised when the Kubernetes API rejects the object as invalid (422)."""

    default_code = "Invalid"
    default_http_status = 422


class ConfigurationError(PermanentError):
    """Raised when the worker cannot reach a cluster as configured (credentials, TLS)."""

    default_code = "ConfigurationError"


class ConfigurationInvalid(PermanentError):
    """Raised when a process cannot start with the settings it was given; says what to set."""

    default_code = "ConfigurationInvalid"


class Throttled(TransientError):
    """Raised when the API asks us to slow down (429); honours ``retry_after``."""

    default_code = "TooManyRequests"
    default_http_status = 429


class Unavailable(TransientError):
    """Raised when the API or the network fails in a way that may pass (5xx, resets)."""

    default_code = "ServiceUnavailable"
    default_http_status = 503


class ChunkFailed(PermanentError):
    """Raised as a chunk's own outcome when requests it carried failed (each failed alone)."""

    default_code = "ChunkFailed"


class StillRunning(TransientError, TimeoutError):
    """Raised when a caller's wait for a request ran out before the request ended."""

    default_code = "StillRunning"
    default_http_status = 504


class QueueUnavailable(Unavailable):
    """Raised when eksops's own Redis (queue, records, results) cannot be reached."""

    default_code = "QueueUnavailable"


class EnqueueInterrupted(QueueUnavailable):
    """Raised when Redis failed during an enqueue; says which items went in.

    ``accepted`` has one entry per item sent: True (enqueued), False (a duplicate ID,
    nothing enqueued), None (not enqueued, or unknown because the connection broke:
    resubmitting the same request IDs is safe either way), or the enqueue's marker of
    an ID already used with other arguments (``producer.enqueue.Reused``).
    """

    default_code = "EnqueueInterrupted"

    def __init__(self, accepted: list[Any], cause: BaseException) -> None:
        self.accepted = accepted
        self.cause = cause
        self.enqueued = sum(1 for flag in accepted if flag is True)
        super().__init__(
            f"Redis failed during the enqueue ({self.enqueued} items enqueued): {cause}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Which items went in matters only to the submitter; elsewhere it is an outage.
        return (QueueUnavailable, self.args)


def error_class_for_status(http_status: int) -> type[EksOpsError]:
    """Return the class for an HTTP status: 5xx is transient, other unknowns the root."""
    known = _BY_STATUS.get(http_status)
    if known is not None:
        return known
    return Unavailable if http_status >= 500 else EksOpsError


def error_from_info(info: ErrorInfo) -> EksOpsError:
    """Rebuild the closest error class from its structured form."""
    cls = _BY_CODE.get(info.code) or error_class_for_status(info.http_status)
    return cls(info.message, info.http_status, info.code, info.details)


_BY_CODE: dict[str, type[EksOpsError]] = {
    cls.default_code: cls
    for cls in (
        InvalidRequest,
        InvalidName,
        InvalidManifest,
        Unauthorized,
        Forbidden,
        ProtectedNamespace,
        OutOfScope,
        PolicyViolation,
        QuotaExceeded,
        NotFound,
        ClusterNotFound,
        UnknownRequest,
        Conflict,
        RequestIdReused,
        Cancelled,
        Gone,
        Invalid,
        ConfigurationError,
        ConfigurationInvalid,
        Throttled,
        StillRunning,
        ChunkFailed,
        Unavailable,
        QueueUnavailable,
    )
}
_BY_STATUS: dict[int, type[EksOpsError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: Throttled,
    500: Unavailable,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}
