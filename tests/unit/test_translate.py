"""Kubernetes, AWS and transport exceptions become eksops errors in one place."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from worker import errors
from worker.operations.translate import translate


def api_exception(
    status: int,
    reason: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **details: object,
) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason.replace(" ", ""),
            "details": details,
            "code": status,
        }
    )
    exc.headers = headers or {}
    return exc


def test_a_404_keeps_the_kubernetes_message_and_details() -> None:
    error = translate(
        api_exception(
            404,
            "NotFound",
            'jobs.batch "nonexistent-job" not found',
            name="nonexistent-job",
            kind="jobs",
        )
    )
    assert isinstance(error, errors.NotFound)
    assert (error.http_status, error.code, error.message) == (
        404,
        "NotFound",
        'jobs.batch "nonexistent-job" not found',
    )
    assert error.details["kind"] == "jobs"


def test_a_403_is_forbidden_and_permanent() -> None:
    message = 'namespaces is forbidden: User "arn:aws:sts::1:assumed-role/r/i" cannot create resource "namespaces" in API group "" at the cluster scope'
    error = translate(api_exception(403, "Forbidden", message))
    assert isinstance(error, errors.Forbidden)
    assert not error.retryable
    assert error.message == message


def test_a_409_already_exists_is_a_conflict_with_its_reason_as_code() -> None:
    error = translate(api_exception(409, "AlreadyExists", 'jobs.batch "x" already exists'))
    assert isinstance(error, errors.Conflict)
    assert error.code == "AlreadyExists"


def test_a_422_is_invalid() -> None:
    assert isinstance(
        translate(api_exception(422, "Invalid", 'Job.batch "x" is invalid')), errors.Invalid
    )


def test_a_410_is_gone() -> None:
    assert isinstance(
        translate(api_exception(410, "Expired", "too old resource version")), errors.Gone
    )


def test_a_429_carries_retry_after_from_the_header() -> None:
    error = translate(
        api_exception(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            headers={"Retry-After": "3"},
        )
    )
    assert isinstance(error, errors.Throttled)
    assert error.retry_after == 3.0


def test_a_429_falls_back_to_retry_after_seconds_in_details() -> None:
    error = translate(api_exception(429, "TooManyRequests", "slow down", retryAfterSeconds=7))
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("86400", 60.0), ("1e309", None), ("nan", None), ("-5", 0.0), ("soon", None)],
)
def test_an_absurd_retry_after_never_pauses_the_fleet_for_long(
    header: str, expected: float | None
) -> None:
    error = translate(
        api_exception(429, "TooManyRequests", "slow down", headers={"Retry-After": header})
    )
    assert error.retry_after == expected


def test_server_errors_are_transient() -> None:
    for status, reason in (
        (500, "InternalError"),
        (502, "BadGateway"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ):
        error = translate(api_exception(status, reason, "boom"))
        assert isinstance(error, errors.Unavailable), status
        assert error.http_status == status


def test_a_401_without_a_body_is_unauthorized() -> None:
    exc = ApiException(status=401, reason="Unauthorized")
    error = translate(exc)
    assert isinstance(error, errors.Unauthorized)
    assert error.message == "401 Unauthorized"


def test_missing_aws_credentials_are_a_configuration_error_that_says_what_to_do() -> None:
    error = translate(botocore.exceptions.NoCredentialsError())
    assert isinstance(error, errors.ConfigurationError)
    assert error.code == "NoCredentials"
    assert "Unable to locate credentials" in error.message
    assert "AWS_ACCESS_KEY_ID" in error.message


def test_an_unknown_cluster_is_cluster_not_found() -> None:
    exc = botocore.exceptions.ClientError(
        {
            "Error": {
                "Code": "ResourceNotFoundException",
                "Message": "No cluster found for name: nope.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 404},
        },
        "DescribeCluster",
    )
    error = translate(exc)
    assert isinstance(error, errors.ClusterNotFound)
    assert error.message == "EKS cluster not found: No cluster found for name: nope."


def test_aws_throttling_is_transient() -> None:
    exc = botocore.exceptions.ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "DescribeCluster",
    )
    assert isinstance(translate(exc), errors.Throttled)


def test_an_unreachable_endpoint_is_transient() -> None:
    exc = urllib3.exceptions.MaxRetryError(
        None, "/api/v1/namespaces", urllib3.exceptions.NewConnectionError(None, "refused")
    )  # type: ignore[arg-type]
    error = translate(exc)
    assert isinstance(error, errors.Unavailable)
    assert error.code == "EndpointUnreachable"
    assert isinstance(
        translate(botocore.exceptions.EndpointConnectionError(endpoint_url="https://eks")),
        errors.Unavailable,
    )


def test_a_failed_tls_verification_is_permanent() -> None:
    exc = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.SSLError("certificate verify failed")
    )  # type: ignore[arg-type]
    error = translate(exc)
    assert isinstance(error, errors.ConfigurationError)
    assert error.code == "TLSError"


def test_library_exceptions_never_leak_untranslated() -> None:
    for exc in (ValueError("odd"), KeyError("k"), ApiException(status=418, reason="teapot")):
        assert isinstance(translate(exc), errors.EksOpsError)
