"""The gateway on fakeredis: a real app, a real ``EksOps``, no worker.

``Worker`` stands in for the worker's last step, storing a request's result or error in
the result backend as Celery does, so ``?wait`` and polling can be tested without a
process. Worker counts for /health come from a counter the test controls.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer import EksOps
from producer.gateway import create_app
from producer.gateway.settings import GatewaySettings
from worker.delivery.config import celery_settings
from worker.errors import EksOpsError
from worker.settings import QueueSettings

JOB_MANIFEST: dict[str, Any] = {
    "spec": {
        "parallelism": 1,
        "template": {
            "spec": {
                "containers": [{"name": "job-container", "image": "my-image:latest"}],
                "restartPolicy": "Never",
            }
        },
    }
}

# The seed's success bodies, as the worker stores them.
JOB_CREATED = {
    "job_name": "my-job",
    "namespace": "default",
    "creation_timestamp": "2026-01-20T10:30:00.123456+00:00",
    "status": "created",
}


def new_id() -> str:
    return str(uuid.uuid4())


class Worker:
    """Stores outcomes in the result backend, as a worker finishing a task would."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def succeed(self, request_id: str, result: dict[str, Any], *, after: float = 0.0) -> None:
        self._later(after, lambda: self.app.backend.mark_as_done(request_id, result))

    def fail(self, request_id: str, error: EksOpsError, *, after: float = 0.0) -> None:
        self._later(after, lambda: self.app.backend.mark_as_failure(request_id, error))

    @staticmethod
    def _later(delay: float, action: Callable[[], object]) -> None:
        if delay <= 0:
            action()
            return
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()


class WorkerCount:
    """What /health's worker ping answers; counts how often it was asked."""

    def __init__(self, value: int = 1) -> None:
        self.value: int | Exception = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    """The fake Redis; set ``connected = False`` to take it down."""
    return fakeredis.FakeServer()


@pytest.fixture
def redis(redis_server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=redis_server)


@pytest.fixture
def celery_app() -> Celery:
    queue = QueueSettings(redis_url="redis://unused:6379/0")
    app = Celery("gateway-tests", set_as_current=False)
    app.conf.update({**celery_settings(queue), "result_backend": "cache+memory://"})
    return app


@pytest.fixture
def worker(celery_app: Celery) -> Worker:
    return Worker(celery_app)


@pytest.fixture
def workers() -> WorkerCount:
    return WorkerCount(1)


@pytest.fixture
def make_app(
    redis: fakeredis.FakeRedis,
    redis_server: fakeredis.FakeServer,
    celery_app: Celery,
    workers: WorkerCount,
) -> Callable[..., FastAPI]:
    """Build the gateway with settings overridden by keyword (field names)."""

    def build(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {"gateway_wait_max_seconds": 2.0, **overrides}
        settings = GatewaySettings(**values)
        queue = QueueSettings(redis_url="redis://unused:6379/0")
        eksops = EksOps(settings=settings, queue=queue, app=celery_app, redis=redis)
        streams = fakeredis.FakeAsyncRedis(server=redis_server)
        return create_app(settings, eksops=eksops, count_workers=workers, async_redis=streams)

    return build


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client
