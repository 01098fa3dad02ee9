"""The five operations end to end through the library: Redis, a worker, a cluster."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from producer import EksOps
from tests.integration.conftest import job_manifest
from tests.support.processes import WorkerProcess
from tests.support.waiting import wait_until
from worker.contracts import MANAGED_BY_LABEL, REQUEST_ID_LABEL, RequestState
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


def test_create_job_then_read_its_status_then_delete_it(
    eksops: EksOps, kube: ClusterClient, namespace: str
) -> None:
    created = eksops.result(
        eksops.create_job(job_manifest("nightly"), namespace).request_id, timeout=30
    )
    assert created["job_name"] == "nightly"
    assert created["namespace"] == namespace
    assert created["status"] == "created"
    assert created["creation_timestamp"].endswith("+00:00")

    job = kube.call(kube.batch.read_namespaced_job, name="nightly", namespace=namespace)
    assert job["metadata"]["labels"][MANAGED_BY_LABEL] == "eksops"

    status = eksops.result(eksops.get_job_status("nightly", namespace).request_id, timeout=30)
    assert set(status) == {
        "job_name",
        "namespace",
        "state",
        "active",
        "succeeded",
        "failed",
        "start_time",
        "completion_time",
    }
    assert status["state"] in {"pending", "running", "completed"}

    deleted = eksops.result(eksops.delete_job("nightly", namespace).request_id, timeout=30)
    assert deleted == {"message": "Job nightly deleted successfully", "status": "success"}


def test_a_job_without_a_name_is_named_from_its_request_id(eksops: EksOps, namespace: str) -> None:
    submission = eksops.create_job(job_manifest(), namespace)
    created = eksops.result(submission.request_id, timeout=30)
    assert created["job_name"] == "eksops-" + uuid.UUID(submission.request_id).hex[:20]


def test_a_job_in_a_missing_namespace_creates_the_namespace(
    eksops: EksOps, kube: ClusterClient, namespace: str
) -> None:
    eksops.result(eksops.create_job(job_manifest("first"), namespace).request_id, timeout=30)
    created_ns = kube.call(kube.core.read_namespace, name=namespace)
    assert created_ns["metadata"]["labels"][MANAGED_BY_LABEL] == "eksops"


def test_create_and_delete_a_namespace(eksops: EksOps, kube: ClusterClient, namespace: str) -> None:
    submission = eksops.create_namespace(namespace)
    created = eksops.result(submission.request_id, timeout=30)
    assert created["namespace_name"] == namespace
    assert created["status"] == "created"
    labels = kube.call(kube.core.read_namespace, name=namespace)["metadata"]["labels"]
    assert labels[REQUEST_ID_LABEL] == submission.request_id

    deleted = eksops.result(eksops.delete_namespace(namespace).request_id, timeout=30)
    assert deleted == {
        "message": f"Namespace {namespace} deleted successfully",
        "status": "success",
    }


def test_a_completed_job_reads_as_completed(eksops: EksOps, namespace: str, target: object) -> None:
    manifest = job_manifest("quick", **{"kubesim.eksops.io/duration-seconds": "0.3"})
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["true"]  # type: ignore[index]
    eksops.result(eksops.create_job(manifest, namespace).request_id, timeout=30)

    def completed() -> dict[str, Any] | None:
        status = eksops.result(eksops.get_job_status("quick", namespace).request_id, timeout=30)
        return status if status["state"] == "completed" else None

    status = wait_until(completed, timeout=60, interval=0.3)
    assert status["succeeded"] == 1
    assert status["completion_time"] is not None


def test_a_polled_request_moves_from_queued_to_succeeded_with_timestamps(
    eksops: EksOps, namespace: str
) -> None:
    submission = eksops.create_namespace(namespace)
    assert eksops.status(submission.request_id).state in {
        RequestState.QUEUED,
        RequestState.STARTED,
        RequestState.SUCCEEDED,
    }
    final = eksops.wait(submission.request_id, timeout=30)
    assert final.state is RequestState.SUCCEEDED
    assert final.attempts == 1
    assert final.submitted_at
    assert final.started_at
    assert final.finished_at
    assert final.submitted_at <= final.started_at <= final.finished_at


def test_the_same_request_id_submitted_twice_runs_once(
    eksops: EksOps, kube: ClusterClient, worker: WorkerProcess, namespace: str
) -> None:
    rid = str(uuid.uuid4())
    first = eksops.create_job(job_manifest(), namespace, request_id=rid)
    second = eksops.create_job(job_manifest(), namespace, request_id=rid)
    assert (first.duplicate, second.duplicate) == (False, True)
    result = eksops.result(rid, timeout=30)
    assert eksops.result(rid, timeout=30) == result
    jobs = kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]
    assert [job["metadata"]["labels"][REQUEST_ID_LABEL] for job in jobs] == [rid]
    assert worker.log().count(f"[{rid}] received") == 1


def test_an_unknown_request_id_is_unknown_not_queued(eksops: EksOps) -> None:
    assert eksops.status(str(uuid.uuid4())).state is RequestState.UNKNOWN
