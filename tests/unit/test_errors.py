"""Errors keep their class, code, status and message across the JSON result backend."""

from __future__ import annotations

import json
import pickle

import fakeredis
import pytest
from celery import Celery

from worker import errors
from worker.errors import ErrorInfo


@pytest.fixture
def backend() -> object:
    app = Celery("t", set_as_current=False)
    app.conf.update(
        result_backend="redis://fake", result_serializer="json", result_accept_content=["json"]
    )
    return app.backend


@pytest.mark.parametrize(
    "error",
    [
        errors.NotFound('jobs.batch "x" not found', 404, "NotFound", {"kind": "jobs", "name": "x"}),
        errors.Forbidden('namespaces is forbidden: User "arn" cannot create resource', 403),
        errors.Throttled("Too many requests", 429, "TooManyRequests", None, 2.5),
        errors.ClusterNotFound("EKS cluster not found: No cluster found for name: x."),
        errors.ProtectedNamespace("Namespace kube-system is protected"),
        errors.ConfigurationError("Unable to locate credentials", code="NoCredentials"),
    ],
)
def test_an_error_survives_the_json_result_backend(
    backend: object, error: errors.EksOpsError
) -> None:
    stored = json.loads(json.dumps(backend.prepare_exception(error)))  # type: ignore[attr-defined]
    rebuilt = backend.exception_to_python(stored)  # type: ignore[attr-defined]
    assert type(rebuilt) is type(error)
    assert rebuilt.to_info() == error.to_info()
    assert str(rebuilt) == error.message


def test_errors_pickle_for_prefork_pools() -> None:
    error = errors.Invalid('Job.batch "x" is invalid', 422, "Invalid", {"causes": []})
    assert pickle.loads(pickle.dumps(error)).to_info() == error.to_info()


def test_transient_and_permanent_branches_decide_retries() -> None:
    assert errors.Throttled("x").retryable
    assert errors.Unavailable("x").retryable
    for permanent in (
        errors.NotFound,
        errors.Conflict,
        errors.Forbidden,
        errors.Invalid,
        errors.InvalidRequest,
    ):
        assert not permanent("x").retryable


def test_the_structured_form_maps_back_to_the_closest_class() -> None:
    assert isinstance(
        errors.error_from_info(ErrorInfo(code="AlreadyExists", message="m", http_status=409)),
        errors.Conflict,
    )
    assert isinstance(
        errors.error_from_info(ErrorInfo(code="ClusterNotFound", message="m", http_status=404)),
        errors.ClusterNotFound,
    )
    assert isinstance(
        errors.error_from_info(ErrorInfo(code="InternalError", message="m", http_status=502)),
        errors.Unavailable,
    )


def test_unknown_http_statuses_fall_into_the_right_branch() -> None:
    assert errors.error_class_for_status(599) is errors.Unavailable
    assert errors.error_class_for_status(418) is errors.EksOpsError


def test_fakeredis_backend_round_trip_keeps_the_error(backend: object) -> None:
    server = fakeredis.FakeServer()
    backend.client = fakeredis.FakeRedis(server=server)  # type: ignore[attr-defined]
    error = errors.NotFound('jobs.batch "x" not found', 404, "NotFound", {"kind": "jobs"})
    backend.mark_as_failure("3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c", error)  # type: ignore[attr-defined]
    meta = backend.get_task_meta("3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c")  # type: ignore[attr-defined]
    assert meta["status"] == "FAILURE"
    assert meta["result"].to_info() == error.to_info()
