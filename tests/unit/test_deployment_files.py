"""The shipped deployment files keep their safety properties (no Docker engine here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.operations.checks import REQUIRED_ACCESS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_flower_is_never_served_without_authentication_and_only_on_loopback(
    compose: dict[str, Any],
) -> None:
    flower = compose["services"]["flower"]
    auth = [arg for arg in flower["command"] if arg.startswith("--basic-auth=")]
    assert auth
    assert re.fullmatch(r"--basic-auth=\$\{FLOWER_BASIC_AUTH:\?.+\}", auth[0])
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_redis_requires_a_password_and_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]


def test_required_settings_fail_fast(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in ("EKS_CLUSTER_NAME", "EKS_REGION", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert re.search(rf"\$\{{{variable}:\?[^}}]+\}}", text), variable


def test_every_service_has_a_healthcheck_and_waits_for_a_healthy_redis(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert "healthcheck" in service, name
        if name != "redis":
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_workers_get_time_for_a_warm_shutdown(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["stop_grace_period"] == "60s"


def test_the_iam_policy_grants_describe_cluster_on_one_cluster_only() -> None:
    policy = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
    (statement,) = policy["Statement"]
    assert statement["Action"] == "eks:DescribeCluster"
    assert statement["Resource"].startswith("arn:aws:eks:")
    assert "*" not in statement["Resource"]


def test_rbac_grants_exactly_what_eksops_uses_and_doctor_checks() -> None:
    role, binding = yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    granted = {
        (rule["apiGroups"][0], resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {(access.group, access.resource, access.verb) for access in REQUIRED_ACCESS}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
