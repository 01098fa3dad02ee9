"""Configuration problems are reported in one line that says what to set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from worker.delivery.config import celery_settings
from worker.delivery.connections import sentinel_hosts
from worker.errors import ConfigurationInvalid
from worker.settings import QueueSettings, WorkerSettings
from worker.validation import validate_settings

ROOT = Path(__file__).resolve().parents[2]


def failure(**values: object) -> str:
    with pytest.raises(ConfigurationInvalid) as caught:
        validate_settings(WorkerSettings, **values)
    return caught.value.message


def test_a_worker_needs_a_cluster() -> None:
    assert "EKS_CLUSTER_NAME is not set" in failure()


def test_a_worker_on_eks_needs_a_region() -> None:
    assert "EKS_REGION is not set" in failure(eks_cluster_name="prod")


def test_a_bad_log_level_is_named_with_its_value() -> None:
    message = failure(eks_cluster_name="prod", eks_region="us-east-1", log_level="LOUD")
    assert message.startswith("LOG_LEVEL:")
    assert "'LOUD'" in message


def test_a_token_refresh_beyond_the_token_lifetime_is_refused() -> None:
    assert "TOKEN_REFRESH_SECONDS" in failure(
        eks_cluster_name="p", eks_region="us-east-1", token_refresh_seconds=900
    )


def test_a_kubeconfig_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    assert "is not a file" in failure(kubeconfig=tmp_path / "missing")


def test_the_region_falls_back_to_the_standard_aws_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EKS_CLUSTER_NAME", "prod")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert WorkerSettings().eks_region == "eu-west-1"


def test_protected_namespaces_are_read_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EKS_CLUSTER_NAME", "prod")
    monkeypatch.setenv("EKS_REGION", "us-east-1")
    monkeypatch.setenv("EKSOPS_PROTECTED_NAMESPACES", "payments, ledger ,")
    assert WorkerSettings().protected_namespaces == ("payments", "ledger")


def test_separate_broker_and_backend_urls_override_redis_url() -> None:
    queue = QueueSettings(redis_url="redis://a/0", celery_broker_url="redis://b/0")
    assert (queue.broker_url, queue.result_backend) == ("redis://b/0", "redis://a/0")


def test_a_non_redis_broker_is_refused() -> None:
    with pytest.raises(ConfigurationInvalid, match="must be a redis://, rediss:// or sentinel://"):
        QueueSettings(redis_url="amqp://guest@localhost//").require_urls()


def test_a_sentinel_url_needs_the_masters_name_said_in_one_line() -> None:
    with pytest.raises(ConfigurationInvalid, match="REDIS_SENTINEL_MASTER is not set"):
        QueueSettings(
            redis_url="sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"
        ).require_urls()
    QueueSettings(
        redis_url="sentinel://10.0.0.1:26379", redis_sentinel_master="eksops"
    ).require_urls()


def test_a_sentinel_broker_keeps_the_eksops_transport_and_its_options() -> None:
    queue = QueueSettings(
        redis_url="sentinel://:pw@10.0.0.1:26379/2;sentinel://10.0.0.2",
        redis_sentinel_master="eksops",
        redis_sentinel_password="sentinel-pw",
    )
    worker = celery_settings(queue)
    assert worker["broker_transport"] == "worker.delivery.transport:SentinelTransport"
    options = worker["broker_transport_options"]
    assert options["master_name"] == "eksops"
    assert options["sentinel_kwargs"] == {"password": "sentinel-pw"}
    assert options["visibility_timeout"] == queue.visibility_timeout_seconds  # kept
    assert worker["result_backend_transport_options"]["master_name"] == "eksops"
    assert "broker_transport" not in celery_settings(queue, role="producer")
    hosts, master = sentinel_hosts(str(queue.broker_url))
    assert hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert master == {"db": 2, "password": "pw"}


def worker_refusal(tmp_path: Path, **env: str) -> list[str]:
    """Start ``celery -A worker worker`` with ``env``; expect exit 2; return its stderr lines."""
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("celery")), "-A", "worker", "worker"],
        cwd=ROOT,
        env={
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(tmp_path),
            "REDIS_URL": "redis://127.0.0.1:1/0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    return [line for line in completed.stderr.splitlines() if line.strip()]


@pytest.mark.timeout(60)
def test_a_misconfigured_worker_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    assert worker_refusal(tmp_path) == [
        "eksops worker: invalid configuration: EKS_CLUSTER_NAME is not set: set it to the EKS "
        "cluster to operate on (or set KUBECONFIG for kind, k3s or minikube)"
    ]


@pytest.mark.timeout(60)
def test_a_worker_with_an_unusable_signing_key_refuses_to_start_with_one_line(
    tmp_path: Path,
) -> None:
    leaf = trustme.CA().issue_cert("producer.eksops.internal")  # ECDSA: Celery signs with RSA only
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    lines = worker_refusal(
        tmp_path,
        EKS_CLUSTER_NAME="prod",
        EKS_REGION="us-east-1",
        MESSAGE_SIGNING_KEY=str(tmp_path / "key.pem"),
        MESSAGE_SIGNING_CERTIFICATE=str(tmp_path / "cert.pem"),
        MESSAGE_SIGNING_CERT_STORE=str(tmp_path),
    )
    assert lines == [
        "eksops worker: invalid configuration: message signing: Invalid private key: "
        "ValueError('Non-RSA keys are not supported.')"
    ]


@pytest.mark.parametrize(
    ("values", "runners"),
    [
        ({}, 2),  # the interactive share (0.25) of 8 threads
        ({"worker_concurrency": 1}, 1),  # at least one
        ({"worker_concurrency": 10}, 3),  # rounded up
        ({"worker_interactive_share": 0.0}, 0),  # no share kept for singles: none
        ({"worker_interactive_runners": 5}, 5),
        ({"worker_interactive_runners": 0}, 0),  # off: the pool takes single requests
        ({"worker_pool": "prefork", "worker_interactive_runners": 4}, 0),  # threads pool only
    ],
)
def test_interactive_runners_follow_the_threads_interactive_share_unless_set(
    values: dict[str, object], runners: int
) -> None:
    assert validate_settings(QueueSettings, **values).interactive_runners == runners


def test_a_negative_number_of_runners_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationInvalid) as caught:
        validate_settings(QueueSettings, worker_interactive_runners=-1)
    assert caught.value.message.startswith("WORKER_INTERACTIVE_RUNNERS:")
