"""Fixtures for the operations suite: real clients over HTTPS against kubesim.

Operations run exactly as in the worker (DescribeCluster, presigned token, verified
TLS) but called directly, without Redis or Celery, so each behaviour is checked at
the boundary where it lives.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kubesim import Simulator
from kubesim.testing import kubesim, kubesim_env  # noqa: F401 - fixtures
from worker.operations import ClusterClient, Clusters
from worker.settings import WorkerSettings

JOB: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}
        }
    }
}


@pytest.fixture
def settings(kubesim_env: Simulator) -> WorkerSettings:
    return WorkerSettings()


@pytest.fixture
def clusters(settings: WorkerSettings) -> Clusters:
    return Clusters(settings, pool_size=4)


@pytest.fixture
def cluster(clusters: Clusters) -> ClusterClient:
    return clusters.get()


@pytest.fixture
def request_id() -> str:
    return str(uuid.uuid4())
