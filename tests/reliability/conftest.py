"""Fault-test stacks: each test gets its own Redis servers, workers and a clean kubesim.

Workers are real ``celery -A worker worker`` processes configured only by environment,
with short timeouts (visibility, lease, backoff) so faults play out in seconds. Redis
servers are the test's own, so they can be restarted, paused and stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubesim import Simulator
from producer import EksOps
from producer.batches import BatchStatus
from producer.settings import ProducerSettings
from tests.integration.conftest import environment
from tests.support.processes import WorkerProcess
from tests.support.redis_servers import RedisServer
from worker.contracts import REQUEST_ID_LABEL, RequestStatus
from worker.operations import ClusterClient, Clusters
from worker.settings import QueueSettings, WorkerSettings

FAST = {
    "LOG_LEVEL": "DEBUG",
    "RETRY_BACKOFF_SECONDS": "0.2",
    "RETRY_BACKOFF_MAX_SECONDS": "1",
    "LEASE_SECONDS": "3",
    "WORKER_CONCURRENCY": "4",
}


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    with Simulator(
        cluster="eksops-faults", job_duration=30.0, namespace_termination=0.3
    ) as simulator:
        yield simulator


@dataclass
class Stack:
    """One test's Redis, workers and clients, all pointed at the shared kubesim."""

    sim: Simulator
    tmp: Path
    broker: RedisServer
    backend: RedisServer | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    clients: list[EksOps] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {**self.sim.env, **FAST, "REDIS_URL": self.broker.url}
        if self.backend is not None:
            env["CELERY_RESULT_BACKEND"] = self.backend.url
        env.update(overrides)
        return env

    def worker(self, **overrides: str) -> WorkerProcess:
        process = WorkerProcess(self.env(**overrides), self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(process)
        return process.start()

    def client(self, **queue: Any) -> EksOps:
        settings = QueueSettings(
            redis_url=self.broker.url,
            celery_result_backend=self.backend.url if self.backend else None,
            **queue,
        )
        eksops = EksOps(settings=ProducerSettings(), queue=settings)
        self.clients.append(eksops)
        return eksops

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.workers)


@pytest.fixture
def make_stack(sim: Simulator, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def build(*, separate_backend: bool = False, **server: Any) -> Stack:
        broker = RedisServer(tmp_path / "broker", **server).start()
        backend = RedisServer(tmp_path / "backend", **server).start() if separate_backend else None
        stack = Stack(sim=sim, tmp=tmp_path, broker=broker, backend=backend)
        stacks.append(stack)
        return stack

    sim.admin.reset()
    yield build
    for stack in stacks:
        for client in stack.clients:
            client.close()
        for worker in stack.workers:
            worker.kill()
        for server in (stack.broker, stack.backend):
            if server is not None:
                server.stop()


@pytest.fixture(scope="session")
def kube(sim: Simulator) -> ClusterClient:
    with environment(sim.env):
        return Clusters(WorkerSettings(), pool_size=2).get()


@pytest.fixture
def namespace() -> str:
    return f"rel-{uuid.uuid4().hex[:10]}"


def jobs_by_request(kube: ClusterClient, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Return the Jobs of ``namespace`` grouped by the request that created them."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]:
        rid = job["metadata"]["labels"].get(REQUEST_ID_LABEL, "")
        grouped.setdefault(rid, []).append(job)
    return grouped


def batch_when_readable(eksops: EksOps, batch_id: str) -> BatchStatus | None:
    """Return a batch's status, or None while Redis cannot be read (an outage test)."""
    try:
        return eksops.batch(batch_id)
    except Exception:
        return None


def final(eksops: EksOps, request_id: str, timeout: float = 60.0) -> RequestStatus:
    """Wait for a request to end and return its status."""
    status = eksops.wait(request_id, timeout)
    assert status.state.is_terminal, status
    return status


def manifest(name: str | None = None) -> dict[str, Any]:
    """A small valid Job manifest."""
    body: dict[str, Any] = {
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "containers": [{"name": "main", "image": "busybox"}],
                    "restartPolicy": "Never",
                }
            },
        }
    }
    if name:
        body["metadata"] = {"name": name}
    return body
