"""Job operations against kubesim through the real kubernetes client."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from kubesim import Simulator
from tests.operations.conftest import JOB
from tests.support.waiting import wait_until
from worker import errors
from worker.contracts import MANAGED_BY_LABEL, REQUEST_ID_LABEL
from worker.operations import ClusterClient, create_job, delete_job, get_job_status


def named(name: str, **annotations: str) -> dict[str, Any]:
    manifest = copy.deepcopy(JOB)
    manifest["metadata"] = {"name": name, "annotations": annotations}
    return manifest


def list_jobs(cluster: ClusterClient, namespace: str) -> list[dict[str, Any]]:
    return cluster.call(cluster.batch.list_namespaced_job, namespace=namespace)["items"]


def test_create_job_returns_the_seed_shape_and_labels_the_job(
    cluster: ClusterClient, request_id: str
) -> None:
    created = create_job(
        cluster=cluster, request_id=request_id, manifest=named("nightly"), namespace="default"
    )
    assert created.job_name == "nightly"
    assert created.namespace == "default"
    assert created.status == "created"
    assert created.creation_timestamp.endswith("+00:00")
    (job,) = list_jobs(cluster, "default")
    assert job["metadata"]["labels"][MANAGED_BY_LABEL] == "eksops"
    assert job["metadata"]["labels"][REQUEST_ID_LABEL] == request_id


def test_the_manifest_labels_stay_beside_eksops_labels_and_the_manifest_is_not_changed(
    cluster: ClusterClient, request_id: str
) -> None:
    manifest = named("labelled")
    manifest["metadata"]["labels"] = {"team": "data"}
    manifest["spec"]["template"]["metadata"] = {"labels": {"app": "etl"}}
    sent = copy.deepcopy(manifest)
    create_job(cluster=cluster, request_id=request_id, manifest=manifest, namespace="default")
    assert manifest == sent  # a retry builds its body from the same manifest
    (job,) = list_jobs(cluster, "default")
    assert job["metadata"]["labels"]["team"] == "data"
    assert job["metadata"]["labels"][REQUEST_ID_LABEL] == request_id
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app"] == "etl"
    assert pod_labels[REQUEST_ID_LABEL] == request_id


def test_a_job_without_a_name_gets_one_derived_from_the_request(
    cluster: ClusterClient, request_id: str
) -> None:
    created = create_job(
        cluster=cluster, request_id=request_id, manifest=copy.deepcopy(JOB), namespace="default"
    )
    assert created.job_name == "eksops-" + uuid.UUID(request_id).hex[:20]


def test_running_the_same_request_twice_creates_one_job_with_one_uid(
    cluster: ClusterClient, request_id: str
) -> None:
    first = create_job(
        cluster=cluster, request_id=request_id, manifest=copy.deepcopy(JOB), namespace="default"
    )
    uid = list_jobs(cluster, "default")[0]["metadata"]["uid"]
    second = create_job(
        cluster=cluster, request_id=request_id, manifest=copy.deepcopy(JOB), namespace="default"
    )
    assert first == second
    jobs = list_jobs(cluster, "default")
    assert [job["metadata"]["uid"] for job in jobs] == [uid]


def test_a_name_taken_by_another_request_is_a_conflict(cluster: ClusterClient) -> None:
    create_job(
        cluster=cluster, request_id=str(uuid.uuid4()), manifest=named("taken"), namespace="default"
    )
    with pytest.raises(errors.Conflict, match=r'jobs\.batch "taken" already exists'):
        create_job(
            cluster=cluster,
            request_id=str(uuid.uuid4()),
            manifest=named("taken"),
            namespace="default",
        )


def test_a_missing_namespace_is_created_with_eksops_labels(
    cluster: ClusterClient, request_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    create_job(cluster=cluster, request_id=request_id, manifest=named("j1"), namespace="fresh-ns")
    namespace = cluster.call(cluster.core.read_namespace, name="fresh-ns")
    assert namespace["metadata"]["labels"][MANAGED_BY_LABEL] == "eksops"
    assert "Namespace fresh-ns not found. Creating it." in caplog.text


def test_job_status_follows_the_lifecycle(cluster: ClusterClient, request_id: str) -> None:
    create_job(
        cluster=cluster,
        request_id=request_id,
        manifest=named("life", **{"kubesim.eksops.io/duration-seconds": "0.5"}),
        namespace="default",
    )
    running = get_job_status(cluster=cluster, name="life", namespace="default")
    assert (running.state, running.active) == ("running", 1)
    assert running.start_time is not None
    assert running.completion_time is None
    done = wait_until(
        lambda: (
            (s := get_job_status(cluster=cluster, name="life", namespace="default")).state
            == "completed"
            and s
        )
    )
    assert (done.state, done.succeeded, done.active) == ("completed", 1, 0)
    assert done.completion_time is not None


def test_a_failing_job_reads_as_failed(cluster: ClusterClient, request_id: str) -> None:
    annotations = {"kubesim.eksops.io/outcome": "fail", "kubesim.eksops.io/duration-seconds": "0.1"}
    create_job(
        cluster=cluster,
        request_id=request_id,
        manifest=named("doomed", **annotations),
        namespace="default",
    )
    status = wait_until(
        lambda: (
            (s := get_job_status(cluster=cluster, name="doomed", namespace="default")).state
            == "failed"
            and s
        )
    )
    assert status.state == "failed"
    assert status.failed > 0


def test_status_of_a_missing_job_is_not_found_with_the_kubernetes_message(
    cluster: ClusterClient,
) -> None:
    with pytest.raises(errors.NotFound) as caught:
        get_job_status(cluster=cluster, name="nonexistent-job", namespace="default")
    assert caught.value.message == 'jobs.batch "nonexistent-job" not found'
    assert caught.value.http_status == 404


def test_delete_job_uses_foreground_propagation_and_the_job_goes(
    cluster: ClusterClient, request_id: str
) -> None:
    create_job(cluster=cluster, request_id=request_id, manifest=named("gone"), namespace="default")
    deleted = delete_job(cluster=cluster, name="gone", namespace="default")
    assert deleted.model_dump() == {"message": "Job gone deleted successfully", "status": "success"}
    wait_until(lambda: list_jobs(cluster, "default") == [], timeout=5)


def test_deleting_a_missing_job_fails_first_time_but_succeeds_on_a_redelivery(
    cluster: ClusterClient,
) -> None:
    with pytest.raises(errors.NotFound):
        delete_job(cluster=cluster, name="never", namespace="default")
    assert (
        delete_job(cluster=cluster, name="never", namespace="default", attempt=2).status
        == "success"
    )


def test_a_job_the_api_rejects_is_invalid_with_the_api_message(
    cluster: ClusterClient, request_id: str
) -> None:
    manifest = named("bad")
    manifest["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(errors.Invalid) as caught:
        create_job(cluster=cluster, request_id=request_id, manifest=manifest, namespace="default")
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in caught.value.message


def test_creating_in_a_terminating_namespace_is_forbidden(
    cluster: ClusterClient, kubesim_env: Simulator, request_id: str
) -> None:
    kubesim_env.admin.configure(namespace_termination=5)
    cluster.call(cluster.core.create_namespace, body={"metadata": {"name": "ending"}})
    cluster.call(cluster.core.delete_namespace, name="ending")
    with pytest.raises(errors.Forbidden, match="because it is being terminated"):
        create_job(
            cluster=cluster, request_id=request_id, manifest=named("late"), namespace="ending"
        )
