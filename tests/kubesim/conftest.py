"""Fixtures for kubesim's own suite: one simulator, real clients built like eksops'."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from kubesim import AdminClient, Simulator
from kubesim.testing import kube_api_client, kubesim, kubesim_env  # noqa: F401 - fixtures

# pytest resolves fixtures by parameter name, which F811 mistakes for redefinition.

JOB_IMAGE = "public.ecr.aws/docker/library/busybox:1.36"


@pytest.fixture
def sim(kubesim_env: Simulator) -> Simulator:
    return kubesim_env


@pytest.fixture
def admin(sim: Simulator) -> AdminClient:
    return sim.admin


@pytest.fixture
def api_client(sim: Simulator) -> Iterator[Any]:
    client = kube_api_client(sim)
    yield client
    client.close()


@pytest.fixture
def core(api_client: Any) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api_client)


@pytest.fixture
def batch(api_client: Any) -> k8s.BatchV1Api:
    return k8s.BatchV1Api(api_client)


@pytest.fixture
def eks(sim: Simulator) -> Iterator[Any]:
    """A boto3 EKS client configured only through the env vars kubesim exported."""
    client = boto3.client("eks")
    yield client
    client.close()


@pytest.fixture
def make_eks(sim: Simulator) -> Iterator[Callable[..., Any]]:
    """Build boto3 EKS clients with extra arguments; all are closed afterwards."""
    made: list[Any] = []

    def build(**kwargs: Any) -> Any:
        made.append(boto3.client("eks", **kwargs))
        return made[-1]

    yield build
    for client in made:
        client.close()


@pytest.fixture
def namespace(core: k8s.CoreV1Api) -> str:
    core.create_namespace({"metadata": {"name": "team-a"}})
    return "team-a"


def job_manifest(name: str = "job-1", **extra: Any) -> dict[str, Any]:
    """A minimal valid Job; ``annotations`` and ``spec`` keys may be overridden."""
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "containers": [{"name": "main", "image": JOB_IMAGE, "command": ["true"]}],
                "restartPolicy": "Never",
            }
        }
    }
    spec.update(extra.pop("spec", {}))
    metadata: dict[str, Any] = {"name": name, **extra}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def api_error(call: Callable[[], Any]) -> tuple[int, dict[str, Any], Any]:
    """Run a client call that must fail; return (status, parsed Status body, headers)."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body), caught.value.headers


@pytest.fixture
def make_core(sim: Simulator) -> Iterator[Callable[[str | None], k8s.CoreV1Api]]:
    """CoreV1Api clients that send a given Authorization header (None: send none)."""
    made: list[Any] = []

    def build(authorization: str | None) -> k8s.CoreV1Api:
        api = kube_api_client(sim, token="unused")
        api.configuration.api_key = {"authorization": authorization} if authorization else {}
        made.append(api)
        return k8s.CoreV1Api(api)

    yield build
    for api in made:
        api.close()


def raw(
    api_client: Any,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
) -> tuple[int, Any, Any]:
    """Send a request the typed API would refuse to build; return (status, JSON, headers)."""
    serialized = api_client.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized)
    response.read()
    data = response.data
    return response.status, json.loads(data) if data else None, response.getheaders()
