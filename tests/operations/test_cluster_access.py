"""Cluster access: DescribeCluster, tokens, 401 re-mint, and every failure translated."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from kubesim import Simulator
from kubesim.testing import mint_token
from worker import errors
from worker.contracts import ClusterRef
from worker.operations import Clusters, create_namespace, get_job_status
from worker.settings import WorkerSettings


def test_one_client_per_cluster_is_reused(clusters: Clusters) -> None:
    assert clusters.get() is clusters.get()
    assert clusters.token_mints() == 1


def test_an_unknown_cluster_is_cluster_not_found(clusters: Clusters) -> None:
    with pytest.raises(errors.ClusterNotFound, match="No cluster found for name: elsewhere"):
        clusters.get(ClusterRef(name="elsewhere"))


def test_missing_aws_credentials_are_reported_clearly(
    kubesim_env: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(errors.ConfigurationError) as caught:
        Clusters(WorkerSettings(), pool_size=1).get()
    assert caught.value.code == "NoCredentials"
    assert "Unable to locate credentials" in caught.value.message


def test_an_rbac_denial_is_forbidden_with_the_apiserver_message(
    clusters: Clusters, kubesim_env: Simulator
) -> None:
    kubesim_env.admin.deny(verb="create", resource="namespaces")
    with pytest.raises(errors.Forbidden) as caught:
        create_namespace(cluster=clusters.get(), request_id=str(uuid.uuid4()), name="denied")
    assert caught.value.message.startswith('namespaces is forbidden: User "arn:aws:')
    assert caught.value.message.endswith(
        'cannot create resource "namespaces" in API group "" at the cluster scope'
    )


def test_a_revoked_token_is_reminted_once_and_the_call_succeeds(
    clusters: Clusters, kubesim_env: Simulator
) -> None:
    cluster = clusters.get()
    create_namespace(cluster=cluster, request_id=str(uuid.uuid4()), name="before-revoke")
    kubesim_env.admin.revoke_tokens()
    created = create_namespace(cluster=cluster, request_id=str(uuid.uuid4()), name="after-revoke")
    assert created.status == "created"
    assert clusters.token_mints() >= 2


def test_a_cluster_that_rejects_every_token_fails_unauthorized_after_one_remint(
    clusters: Clusters, kubesim_env: Simulator
) -> None:
    cluster = clusters.get()
    kubesim_env.admin.clear_counters()
    kubesim_env.admin.reject_all_tokens()
    with pytest.raises(errors.Unauthorized):
        get_job_status(cluster=cluster, name="any", namespace="default")
    assert kubesim_env.admin.count("get", "jobs", 401) == 2


def test_tokens_are_reminted_before_the_cluster_would_reject_them(
    kubesim_env: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubesim_env.admin.configure(token_max_age=2)
    monkeypatch.setenv("TOKEN_REFRESH_SECONDS", "1")
    clusters = Clusters(WorkerSettings(), pool_size=1)
    cluster = clusters.get()
    kubesim_env.admin.clear_counters()
    for index in range(6):
        create_namespace(cluster=cluster, request_id=str(uuid.uuid4()), name=f"tick-{index}")
        time.sleep(0.6)
    assert kubesim_env.admin.count("*", "*", 401) == 0
    assert clusters.token_mints() >= 3


def test_throttling_carries_retry_after(clusters: Clusters, kubesim_env: Simulator) -> None:
    kubesim_env.admin.add_fault("status", code=429, retry_after=3, resource="jobs", times=1)
    with pytest.raises(errors.Throttled) as caught:
        get_job_status(cluster=clusters.get(), name="x", namespace="default")
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_transient(clusters: Clusters, kubesim_env: Simulator, code: int) -> None:
    kubesim_env.admin.add_fault("status", code=code, resource="jobs", times=1)
    with pytest.raises(errors.Unavailable) as caught:
        get_job_status(cluster=clusters.get(), name="x", namespace="default")
    assert caught.value.http_status == code


def test_a_dropped_connection_is_transient(clusters: Clusters, kubesim_env: Simulator) -> None:
    kubesim_env.admin.add_fault("drop", resource="jobs", times=1)
    with pytest.raises(errors.Unavailable):
        get_job_status(cluster=clusters.get(), name="x", namespace="default")


def test_an_unreachable_endpoint_is_transient(
    kubesim_env: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_EKS", "https://127.0.0.1:1")
    with pytest.raises(errors.Unavailable, match="Endpoint unreachable"):
        Clusters(WorkerSettings(), pool_size=1).get()


def test_kubeconfig_mode_runs_the_same_operations(
    kubesim_env: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": kubesim_env.url,
                            "certificate-authority": str(kubesim_env.ca_pem_path),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "dev",
                        "user": {
                            "token": mint_token(kubesim_env.cluster, region=kubesim_env.region)
                        },
                    }
                ],
                "contexts": [
                    {"name": "kind-local", "context": {"cluster": "local", "user": "dev"}}
                ],
                "current-context": "kind-local",
            }
        )
    )
    monkeypatch.delenv("EKS_CLUSTER_NAME")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    settings = WorkerSettings()
    assert settings.mode == "kubeconfig"
    cluster = Clusters(settings, pool_size=1).get()
    assert cluster.tokens is None
    created = create_namespace(cluster=cluster, request_id=str(uuid.uuid4()), name="via-kubeconfig")
    assert created.status == "created"
    with pytest.raises(errors.NotFound):
        get_job_status(cluster=cluster, name="none", namespace="via-kubeconfig")


def test_a_broken_kubeconfig_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(errors.ConfigurationError, match="Cannot load KUBECONFIG"):
        Clusters(WorkerSettings(), pool_size=1).get()
