"""Translate Kubernetes, AWS and transport exceptions into the eksops error tree.

The only place that looks inside ``ApiException``, botocore and urllib3 errors. Keeps
the Kubernetes ``Status`` message, reason and details (what a user searches for) and
decides transient vs permanent once: 429 and 5xx and broken connections may pass,
everything else will not.
"""

from __future__ import annotations

import json
import math
from typing import Any

import botocore.exceptions
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from worker.errors import (
    ClusterNotFound,
    ConfigurationError,
    EksOpsError,
    Forbidden,
    Throttled,
    Unauthorized,
    Unavailable,
    error_class_for_status,
)

_AWS_CODES: dict[str, type[EksOpsError]] = {
    "ResourceNotFoundException": ClusterNotFound,
    "AccessDeniedException": Forbidden,
    "AccessDenied": Forbidden,
    "UnrecognizedClientException": Unauthorized,
    "InvalidClientTokenId": Unauthorized,
    "ExpiredToken": Unauthorized,
    "ExpiredTokenException": Unauthorized,
    "SignatureDoesNotMatch": Unauthorized,
    "ThrottlingException": Throttled,
    "TooManyRequestsException": Throttled,
    "ServerException": Unavailable,
    "ServiceUnavailableException": Unavailable,
}


def translate(exc: BaseException) -> EksOpsError:
    """Return the eksops error for ``exc``; unknown exceptions become a plain root error."""
    if isinstance(exc, EksOpsError):
        return exc
    if isinstance(exc, ApiException):
        return _from_api_exception(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        return _from_aws_client_error(exc)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return ConfigurationError(
            f"{exc}. Give the worker an IAM role (instance profile) or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            code="NoCredentials",
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ConfigurationError(f"{exc}: set EKS_REGION", code="NoRegion")
    if isinstance(exc, botocore.exceptions.SSLError | urllib3.exceptions.SSLError):
        return ConfigurationError(f"TLS verification failed: {exc}", code="TLSError")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
        exc.reason, urllib3.exceptions.SSLError
    ):
        return ConfigurationError(f"TLS verification failed: {exc.reason}", code="TLSError")
    if isinstance(
        exc,
        urllib3.exceptions.HTTPError
        | botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | ConnectionError
        | TimeoutError,
    ):
        return Unavailable(f"Endpoint unreachable: {exc}", code="EndpointUnreachable")
    return EksOpsError(f"{type(exc).__name__}: {exc}")


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


# A 429 pauses every worker of the cluster for its Retry-After (see limiter.py), so one
# absurd value (a proxy's, a day) must not stop the fleet: the API server asks for
# seconds. Capped, and only finite numbers count.
RETRY_AFTER_MAX_SECONDS = 60.0


def _retry_after(exc: ApiException, status: dict[str, Any]) -> float | None:
    headers = exc.headers or {}
    header = headers.get("Retry-After") if hasattr(headers, "get") else None
    for candidate in (header, (status.get("details") or {}).get("retryAfterSeconds")):
        try:
            seconds = float(candidate) if candidate is not None else math.nan
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds):
            return min(max(0.0, seconds), RETRY_AFTER_MAX_SECONDS)
    return None


def _from_api_exception(exc: ApiException) -> EksOpsError:
    status = _status_body(exc)
    http_status = int(exc.status or status.get("code") or 500)
    reason = status.get("reason") or str(exc.reason or "").replace(" ", "")
    message = status.get("message") or f"{http_status} {exc.reason}"
    details = {"reason": reason, **(status.get("details") or {})}
    cls = error_class_for_status(http_status)
    return cls(message, http_status, reason or None, details, _retry_after(exc, status))


def _from_aws_client_error(exc: botocore.exceptions.ClientError) -> EksOpsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "ClientError")
    message = str(error.get("Message") or exc)
    http_status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
    known = _AWS_CODES.get(code)
    cls = known or error_class_for_status(http_status)
    if cls is ClusterNotFound:
        message = f"EKS cluster not found: {message}"
    # A known AWS code maps to our own (ClusterNotFound, Forbidden...); others keep theirs.
    return cls(message, http_status, None if known else code, {"aws_error_code": code})
