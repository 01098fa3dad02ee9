"""pytest fixtures and helpers for suites that test against kubesim.

Use as a plugin (``pytest_plugins = ["kubesim.testing"]`` in a conftest) to get:

* ``kubesim`` - one Simulator per test session (fast jobs: 0.2 s);
* ``kubesim_env`` - per test: the simulator reset to its initial state and its
  env vars (``AWS_ENDPOINT_URL_EKS``, ``AWS_CA_BUNDLE``, ...) set in ``os.environ``;

or build differently configured ones with ``simulator_fixture(...)``. The helpers
mint EKS bearer tokens with botocore exactly as aws-iam-authenticator clients do,
and build a ``kubernetes`` client the way eksops' worker does: from DescribeCluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubesim.clients import kube_api_client, mint_token
from kubesim.simulator import Simulator

__all__ = ["kube_api_client", "kubesim", "kubesim_env", "mint_token", "simulator_fixture"]

FAST_JOBS: dict[str, Any] = {
    "job_duration": 0.2,
    "namespace_termination": 0.3,
    "pod_termination": 0.2,
    "pod_startup": 0.05,
}


def simulator_fixture(scope: Any = "session", **options: Any) -> Callable[..., Iterator[Simulator]]:
    """A fixture function yielding a started Simulator built with ``options``."""

    @pytest.fixture(scope=scope)
    def _fixture() -> Iterator[Simulator]:
        with Simulator(**{**FAST_JOBS, **options}) as sim:
            yield sim

    return _fixture


kubesim = simulator_fixture(scope="session", cluster="kubesim-test")


@pytest.fixture
def kubesim_env(kubesim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The session simulator, reset, with its variables in ``os.environ``."""
    kubesim.admin.reset()
    for key, value in kubesim.env.items():
        monkeypatch.setenv(key, value)
    return kubesim
