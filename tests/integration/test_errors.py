"""Failures reach the poller structured, with the Kubernetes or AWS meaning kept."""

from __future__ import annotations

import pytest

from kubesim import Simulator
from producer import EksOps
from producer.settings import ProducerSettings
from tests.integration.conftest import Target, job_manifest
from tests.support.processes import WorkerProcess
from worker import errors
from worker.contracts import ClusterRef, RequestState
from worker.settings import QueueSettings

pytestmark = pytest.mark.integration


def test_a_missing_job_fails_as_not_found_with_the_kubernetes_message(
    eksops: EksOps, namespace: str
) -> None:
    eksops.result(eksops.create_namespace(namespace).request_id, timeout=30)
    status = eksops.wait(eksops.get_job_status("nonexistent-job", namespace).request_id, timeout=30)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status) == ("NotFound", 404)
    assert status.error.message == 'jobs.batch "nonexistent-job" not found'
    with pytest.raises(errors.NotFound, match=r'jobs\.batch "nonexistent-job" not found'):
        eksops.result(status.request_id, timeout=1)


def test_an_rbac_denial_fails_as_forbidden_without_retries(
    eksops: EksOps, sim: Simulator, namespace: str
) -> None:
    sim.admin.deny(verb="create", resource="namespaces")
    status = eksops.wait(eksops.create_namespace(namespace).request_id, timeout=30)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status) == ("Forbidden", 403)
    assert (
        'cannot create resource "namespaces" in API group "" at the cluster scope'
        in status.error.message
    )
    assert status.attempts == 1


def test_an_unknown_cluster_fails_as_cluster_not_found(eksops: EksOps, target: Target) -> None:
    region = target.env.get("EKS_REGION")
    if region is None:
        pytest.skip("cluster names are EKS clusters; the target is a kubeconfig")
    submission = eksops.get_job_status(
        "any", cluster=ClusterRef(name="no-such-cluster", region=region)
    )
    status = eksops.wait(submission.request_id, timeout=30)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert status.error.code == "ClusterNotFound"
    assert "No cluster found for name: no-such-cluster" in status.error.message


def test_a_worker_without_aws_credentials_fails_requests_clearly(
    worker_env: dict[str, str],
    target: Target,
    redis_url: str,
    tmp_path: object,
    worker: WorkerProcess,
) -> None:
    if "EKS_CLUSTER_NAME" not in target.env:
        pytest.skip("AWS credentials only matter for EKS targets")
    # A second queue database: only the credential-less worker serves it.
    isolated = redis_url.rsplit("/", 1)[0] + "/12"
    env = {
        k: v
        for k, v in worker_env.items()
        if not k.startswith("AWS_") or k in ("AWS_ENDPOINT_URL_EKS", "AWS_CA_BUNDLE")
    }
    env.update(
        REDIS_URL=isolated,
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
    )
    process = WorkerProcess(env, tmp_path / "nocreds.log", concurrency=1).start()  # type: ignore[operator]
    client = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=isolated))
    try:
        status = client.wait(client.get_job_status("any").request_id, timeout=30)
    finally:
        client.close()
        process.stop()
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert status.error.code == "NoCredentials"
    assert "Unable to locate credentials" in status.error.message


def test_a_job_the_api_rejects_fails_as_invalid_with_the_field(
    eksops: EksOps, namespace: str
) -> None:
    # The schema allows any integer here; only the API server refuses a negative one,
    # so this reaches the cluster and comes back as a 422.
    manifest = job_manifest("negative")
    manifest["spec"]["backoffLimit"] = -1  # type: ignore[index]
    status = eksops.wait(eksops.create_job(manifest, namespace).request_id, timeout=30)
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status) == ("Invalid", 422)
    assert (
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"
        in status.error.message
    )
