"""Settings shared by every suite: a clean environment for eksops variables.

Tests must not pick up the developer's ``.env`` or exported cluster settings; each
test sets what it needs.
"""

from __future__ import annotations

import pytest

_EKSOPS_VARIABLES = (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "EKS_CLUSTER_NAME",
    "EKS_REGION",
    "KUBECONFIG",
    "KUBE_CONTEXT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "EKSOPS_PROTECTED_NAMESPACES",
    "MAX_MANIFEST_BYTES",
)


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in _EKSOPS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # pydantic-settings reads .env from the working directory; run from an empty one.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
