"""The shipped deployment files keep their safety properties (no Docker engine here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker import metrics
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
        if "profiles" in service:  # monitoring: waits for what it watches instead
            (needed,) = service["depends_on"].values()
            assert needed["condition"] == "service_healthy", name
        elif name != "redis":
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


# --- monitoring: Prometheus, alert rules, the Grafana dashboard, Flower -------------------

DEPLOY = ROOT / "deploy"
METRIC_NAME = re.compile(r"\beksops_[a-z_]+\b")


def _alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "eksops.json").read_text()
    )
    return dashboard


def _dashboard_queries() -> list[str]:
    return [
        target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])
    ]


def test_monitoring_stays_out_of_the_default_stack(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        service = compose["services"][name]
        assert service["profiles"] == ["monitoring"], name
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
    for name in ("redis", "worker", "gateway", "flower"):
        assert "profiles" not in compose["services"][name], name


def test_prometheus_scrapes_the_gateway_and_every_worker_where_they_serve_metrics(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["eksops-gateway"]["static_configs"][0]["targets"] == ["gateway:8000"]
    (workers,) = jobs["eksops-worker"]["dns_sd_configs"]
    port = compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"]
    assert (workers["names"], workers["port"]) == (["worker"], port)
    mounted = compose["services"]["prometheus"]["volumes"]
    (rules,) = config["rule_files"]
    assert f"./deploy/prometheus/alerts.yml:{rules}:ro" in mounted


def test_every_alert_rule_is_complete_and_the_issue_s_alerts_are_there() -> None:
    rules = _alert_rules()
    for rule in rules:
        assert rule["alert"].startswith("Eksops"), rule
        assert METRIC_NAME.search(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    used = " ".join(rule["expr"] for rule in rules)
    for wanted in (
        "eksops_queue_oldest_age_seconds",  # queue age too high
        'eksops_kubernetes_requests_total{code="429"}',  # 429 rate
        "eksops_workers_live",  # no live workers
        'eksops_requests_ended_total{outcome="failed"}',  # failure rate
        "eksops_tracker_lag_seconds",  # tracker lag
    ):
        assert wanted in used, wanted


def test_the_dashboard_and_alerts_use_only_metrics_eksops_declares() -> None:
    declared = metrics.declared_names()
    queries = _dashboard_queries() + [rule["expr"] for rule in _alert_rules()]
    used = {name for query in queries for name in METRIC_NAME.findall(query)}
    assert used
    assert used - declared == set()


def test_the_dashboard_shows_every_metric_eksops_declares() -> None:
    shown = " ".join(_dashboard_queries())
    for metric in metrics.PER_PROCESS:
        (family,) = metric.describe()
        assert family.name in shown, family.name
    for name in metrics.FLEET_GAUGES:
        assert name in shown, name


def test_the_dashboard_reads_the_provisioned_datasource(compose: dict[str, Any]) -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = provisioned["datasources"]
    dashboard = _dashboard()
    assert dashboard["uid"] == "eksops"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    mounted = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounted


def test_flower_shows_the_eksops_queue_keeps_its_history_and_bounds_its_memory(
    compose: dict[str, Any],
) -> None:
    flower = compose["services"]["flower"]
    command = flower["command"]
    assert command[command.index("-A") + 1] == "producer.flower"
    assert "--persistent=True" in command
    (db,) = [arg.removeprefix("--db=") for arg in command if arg.startswith("--db=")]
    (volume,) = flower["volumes"]
    assert db.startswith(volume.split(":", 1)[1] + "/")
    (max_tasks,) = [arg for arg in command if arg.startswith("--max_tasks=")]
    assert re.fullmatch(r"--max_tasks=\$\{FLOWER_MAX_TASKS:-\d+\}", max_tasks)
