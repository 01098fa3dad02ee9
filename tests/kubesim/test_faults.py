"""Injected faults reach real clients as the statuses, delays and resets they expect."""

from __future__ import annotations

import time
from typing import Any

import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from kubernetes import client as k8s

from kubesim import AdminClient, AdminError, Simulator
from kubesim.testing import kube_api_client

from .conftest import api_error


def test_a_429_carries_retry_after_and_the_too_many_requests_status(
    sim: Simulator, admin: AdminClient
) -> None:
    admin.add_fault("status", code=429, retry_after=3, verb="list", resource="namespaces")

    with kube_api_client(sim, retries=0) as api:
        status, body, headers = api_error(k8s.CoreV1Api(api).list_namespace)

    assert status == 429
    assert headers["Retry-After"] == "3"
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 3},
        "code": 429,
    }


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (500, "InternalError", "Internal error occurred: kubesim injected fault"),
        (502, "InternalError", "bad gateway"),
        (503, "ServiceUnavailable", "the server is currently unable to handle the request"),
        (
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout"
            " - context deadline exceeded",
        ),
    ],
)
def test_server_errors_come_with_their_status_bodies(
    admin: AdminClient, core: k8s.CoreV1Api, code: int, reason: str, message: str
) -> None:
    admin.add_fault("status", code=code)

    status, body, _ = api_error(core.list_namespace)

    assert (status, body["reason"], body["message"], body["code"]) == (code, reason, message, code)


def test_a_fault_limited_to_n_times_stops_after_n_matches(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.add_fault("status", code=503, times=2, verb="get")

    first = api_error(lambda: core.read_namespace("default"))[0]
    second = api_error(lambda: core.read_namespace("default"))[0]

    assert (first, second) == (503, 503)
    assert core.read_namespace("default").metadata.name == "default"
    assert admin.faults() == []


def test_a_fault_matches_only_its_verb_resource_and_namespace(
    admin: AdminClient, core: k8s.CoreV1Api, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.add_fault("status", code=500, verb="list", resource="jobs", namespace="team-a")

    assert batch.list_namespaced_job("default").items == []
    assert core.list_namespace().items
    assert api_error(lambda: batch.list_namespaced_job(namespace))[0] == 500


def test_a_zero_probability_fault_never_fires(admin: AdminClient, core: k8s.CoreV1Api) -> None:
    admin.add_fault("status", code=500, probability=0.0)

    for _ in range(5):
        core.list_namespace()

    assert admin.faults()[0]["hits"] == 0


def test_fixed_latency_delays_matching_requests(admin: AdminClient, core: k8s.CoreV1Api) -> None:
    admin.add_fault("latency", ms=250, verb="get", resource="namespaces")

    started = time.monotonic()
    core.read_namespace("default")

    assert time.monotonic() - started >= 0.25


def test_distributed_latency_stays_within_its_bounds(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.add_fault("latency", distribution="uniform", min_ms=100, max_ms=120)

    started = time.monotonic()
    core.read_namespace("default")

    assert time.monotonic() - started >= 0.1


def test_default_latency_applies_to_every_request(admin: AdminClient, core: k8s.CoreV1Api) -> None:
    admin.configure(latency_ms=150)

    started = time.monotonic()
    core.read_namespace("default")

    assert time.monotonic() - started >= 0.15


def test_a_dropped_connection_reaches_the_client_as_a_protocol_error(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.add_fault("drop", verb="create", resource="namespaces", times=1)

    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.create_namespace({"metadata": {"name": "team-b"}})

    assert core.create_namespace({"metadata": {"name": "team-b"}}).metadata.name == "team-b"
    assert admin.count("create", "namespaces", 0) == 1


def test_the_kubernetes_client_itself_retries_a_429_that_carries_retry_after(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.add_fault("status", code=429, retry_after=0, verb="list", times=2)

    assert core.list_namespace().items
    assert admin.count("list", "namespaces", 429) == 2


def test_eks_calls_can_be_throttled(sim: Simulator, admin: AdminClient, make_eks: Any) -> None:
    admin.add_fault("status", code=429, resource="clusters", times=1)
    eks = make_eks(config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))

    with pytest.raises(ClientError) as caught:
        eks.describe_cluster(name=sim.cluster)

    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert eks.describe_cluster(name=sim.cluster)["cluster"]["status"] == "ACTIVE"


def test_fault_rules_can_be_listed_and_removed(admin: AdminClient) -> None:
    rule = admin.add_fault("latency", ms=5)
    admin.add_fault("status", code=500, verb="delete")

    admin.remove_fault(rule["id"])

    assert [r["effect"] for r in admin.faults()] == ["status"]
    admin.clear_faults()
    assert admin.faults() == []


def test_an_invalid_fault_rule_is_refused(admin: AdminClient) -> None:
    with pytest.raises(AdminError) as caught:
        admin.add_fault("status", code=418)

    assert caught.value.status == 400
