"""A failed request's error maps to the seed's status code and detail, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from producer.gateway.errors import seed_failure
from worker.catalog import spec_of
from worker.contracts import Operation
from worker.errors import ErrorInfo

JOB = {"job_name": "nonexistent-job", "namespace": "default"}
NAMESPACE = {"namespace_name": "team-a"}


def kube(status: int, reason: str, message: str = "kube says no") -> ErrorInfo:
    """An error as the worker translates a Kubernetes ``Status`` answer."""
    return ErrorInfo(code=reason, message=message, http_status=status, details={"reason": reason})


def own(code: str, status: int, message: str, **details: Any) -> ErrorInfo:
    """An error the worker or AWS raised, without a Kubernetes reason."""
    return ErrorInfo(code=code, message=message, http_status=status, details=details or None)


CASES = [
    pytest.param(
        Operation.GET_JOB_STATUS,
        JOB,
        kube(404, "NotFound", 'jobs.batch "nonexistent-job" not found'),
        404,
        "Job nonexistent-job not found in namespace default",
        id="seed-scenario-3-job-status-404",
    ),
    pytest.param(
        Operation.DELETE_JOB,
        {"job_name": "old", "namespace": "batch"},
        kube(404, "NotFound"),
        404,
        "Job old not found in namespace batch",
        id="delete-job-404",
    ),
    pytest.param(
        Operation.DELETE_NAMESPACE,
        NAMESPACE,
        kube(404, "NotFound"),
        404,
        "Namespace team-a not found",
        id="delete-namespace-404",
    ),
    pytest.param(
        Operation.CREATE_NAMESPACE,
        NAMESPACE,
        kube(403, "Forbidden", 'namespaces is forbidden: User "x" cannot create'),
        500,
        "Kubernetes API error: Forbidden",
        id="seed-scenario-1-rbac-403",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        kube(404, "NotFound"),
        500,
        "Kubernetes API error: Not Found",
        id="create-job-404-is-not-a-missing-job",
    ),
    pytest.param(
        Operation.GET_JOB_STATUS,
        JOB,
        kube(401, "Unauthorized"),
        500,
        "Kubernetes API error: Unauthorized",
        id="kube-401",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        kube(429, "TooManyRequests"),
        500,
        "Kubernetes API error: Too Many Requests",
        id="kube-429-after-retries",
    ),
    pytest.param(
        Operation.DELETE_JOB,
        JOB,
        kube(503, "ServiceUnavailable"),
        500,
        "Kubernetes API error: Service Unavailable",
        id="kube-503-after-retries",
    ),
    pytest.param(
        Operation.CREATE_NAMESPACE,
        NAMESPACE,
        kube(409, "AlreadyExists", 'namespaces "team-a" already exists'),
        409,
        'namespaces "team-a" already exists',
        id="kube-409-conflict",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        kube(422, "Invalid", 'Job.batch "x" is invalid: spec.backoffLimit: Invalid value: -1'),
        422,
        'Job.batch "x" is invalid: spec.backoffLimit: Invalid value: -1',
        id="kube-422-invalid-object",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        kube(400, "BadRequest", "the body of the request was in an unknown format"),
        400,
        "the body of the request was in an unknown format",
        id="kube-400",
    ),
    pytest.param(
        Operation.DELETE_NAMESPACE,
        {"namespace_name": "kube-system"},
        own(
            "ProtectedNamespace",
            403,
            "Namespace kube-system is protected (kube-system is a Kubernetes system namespace)",
        ),
        403,
        "Namespace kube-system is protected (kube-system is a Kubernetes system namespace)",
        id="worker-refuses-protected-namespace",
    ),
    pytest.param(
        Operation.DELETE_NAMESPACE,
        NAMESPACE,
        own("UnmanagedNamespace", 403, "Namespace team-a was not created by eksops", namespace="x"),
        403,
        "Namespace team-a was not created by eksops",
        id="worker-refuses-unmanaged-namespace",
    ),
    pytest.param(
        Operation.GET_JOB_STATUS,
        JOB,
        own(
            "NoCredentials",
            500,
            "Unable to locate credentials. You can configure credentials by running "
            '"aws configure"',
        ),
        500,
        "Internal server error: Unable to locate credentials. You can configure credentials "
        'by running "aws configure"',
        id="seed-scenario-2-no-credentials",
    ),
    pytest.param(
        Operation.GET_JOB_STATUS,
        JOB,
        own(
            "Forbidden",
            403,
            "User is not authorized to DescribeCluster",
            aws_error_code="AccessDeniedException",
        ),
        500,
        "Internal server error: User is not authorized to DescribeCluster",
        id="aws-denial-is-not-a-kubernetes-error",
    ),
    pytest.param(
        Operation.GET_JOB_STATUS,
        JOB,
        own("ClusterNotFound", 404, "EKS cluster not found: No cluster found for name: prod."),
        500,
        "Internal server error: EKS cluster not found: No cluster found for name: prod.",
        id="the-workers-own-cluster-missing",
    ),
    pytest.param(
        Operation.CREATE_NAMESPACE,
        {**NAMESPACE, "cluster": {"name": "other"}},
        own("ClusterNotFound", 404, "EKS cluster not found: No cluster found for name: other."),
        404,
        "EKS cluster not found: No cluster found for name: other.",
        id="a-cluster-the-caller-named-missing",
    ),
    pytest.param(
        Operation.DELETE_JOB,
        JOB,
        own("EndpointUnreachable", 503, "Endpoint unreachable: connection refused"),
        500,
        "Internal server error: Endpoint unreachable: connection refused",
        id="cluster-unreachable",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        own("OutcomeUnknown", 504, "A worker started this request and no outcome was stored"),
        504,
        "A worker started this request and no outcome was stored",
        id="outcome-lost",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        own("BadRequest", 400, "Invalid create_job request: namespace: must not be empty"),
        422,
        "Invalid create_job request: namespace: must not be empty",
        id="worker-side-contract-check",
    ),
    pytest.param(
        Operation.CREATE_JOB,
        {},
        own("RuntimeError", 500, "Worker exited prematurely: signal 9 (SIGKILL)."),
        500,
        "Internal server error: Worker exited prematurely: signal 9 (SIGKILL).",
        id="anything-else",
    ),
]


@pytest.mark.parametrize(("operation", "arguments", "error", "status", "detail"), CASES)
def test_a_failure_maps_to_the_seed_status_and_detail(
    operation: Operation, arguments: dict[str, Any], error: ErrorInfo, status: int, detail: str
) -> None:
    failure = seed_failure(spec_of(operation), arguments, error)
    assert (failure.status_code, failure.detail) == (status, detail)
    assert failure.error == error


def test_the_route_log_line_keeps_the_seed_wording() -> None:
    failure = seed_failure(
        spec_of(Operation.CREATE_JOB), {}, kube(403, "Forbidden", "namespaces is forbidden")
    )
    assert failure.log_text("creating job") == (
        "Kubernetes API error creating job: (403) Reason: Forbidden: namespaces is forbidden"
    )
    other = seed_failure(spec_of(Operation.CREATE_JOB), {}, own("NoCredentials", 500, "no creds"))
    assert other.log_text("creating job") == "Error creating job: NoCredentials: no creds"
