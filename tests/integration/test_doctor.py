"""``eksops doctor`` and the worker's preflight: cluster access checked step by step, with fixes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from kubesim import Simulator
from tests.integration.conftest import Target
from tests.support.processes import BIN, ROOT, WorkerProcess, base_env, run_cli
from tests.support.waiting import wait_until
from worker import fleet
from worker.operations.checks import REQUIRED_ACCESS

pytestmark = pytest.mark.integration

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
}


def forget_checks(client: Any, cluster: str) -> None:
    """The session's other tests share this Redis: their /health must not see these."""
    for check in fleet.read_all(client):
        if check.cluster.startswith(f"{cluster}@"):
            fleet.forget(client, check)


def doctor(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    completed = run_cli(["doctor", "--json"], env)
    return completed.returncode, json.loads(completed.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_on_a_working_setup_every_check_passes(worker_env: dict[str, str], worker: Any) -> None:
    code, report = doctor(worker_env)
    assert code == 0, report
    checks = by_name(report)
    assert checks["redis (broker)"]["ok"]
    assert checks["api server"]["detail"].startswith("reached over verified TLS")
    assert checks["identity"]["detail"].startswith("authenticated as ")
    for access in REQUIRED_ACCESS:
        assert checks[f"rbac: {access}"]["ok"]
    assert checks["workers"]["ok"]


def test_text_output_is_a_line_per_check_and_a_fix_under_each_failure(
    worker_env: dict[str, str], sim: Simulator
) -> None:
    sim.admin.deny(verb="delete", resource="jobs")
    completed = run_cli(["doctor"], worker_env)
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    failing = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert next(lines[i].split()[1:4] for i in failing) == ["rbac:", "delete", "jobs.batch"]
    assert "fix: apply deploy/rbac.yaml" in lines[failing[0] + 1]
    assert all(line.startswith(("PASS", "FAIL", " ")) for line in lines)


def test_missing_aws_credentials_are_named_with_the_fix_and_stop_the_cluster_steps(
    worker_env: dict[str, str], target: Target
) -> None:
    if not target.is_kubesim:
        pytest.skip("removes the AWS credentials a real cluster needs")
    code, report = doctor({**worker_env, **NO_CREDENTIALS})
    assert code == 1
    checks = by_name(report)
    assert checks["aws credentials"]["ok"] is False
    assert "IAM role" in checks["aws credentials"]["fix"]
    assert "eks describe-cluster" not in checks  # later steps would fail the same way


def test_an_unreachable_redis_and_bad_settings_are_reported_not_raised(
    worker_env: dict[str, str],
) -> None:
    code, report = doctor({**worker_env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert code == 1
    assert by_name(report)["redis (broker)"]["ok"] is False
    code, report = doctor({**worker_env, "K8S_RATE_LIMIT_QPS": "fast"})
    assert code == 2
    assert "K8S_RATE_LIMIT_QPS" in report["checks"][0]["detail"]


@pytest.mark.timeout(120)
def test_a_strict_worker_without_credentials_refuses_to_start_in_one_line(
    worker_env: dict[str, str], target: Target, tmp_path: Path, redis_url: str
) -> None:
    if not target.is_kubesim:
        pytest.skip("removes the AWS credentials a real cluster needs")
    env = base_env(
        {
            **worker_env,
            **NO_CREDENTIALS,
            "WORKER_PREFLIGHT": "strict",
            "EKS_CLUSTER_NAME": "no-credentials-strict",
        }
    )
    completed = subprocess.run(
        [str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo", "--without-mingle"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    client = redis.Redis.from_url(redis_url)
    forget_checks(client, "no-credentials-strict")
    client.close()
    assert completed.returncode == 2
    refusal = [line for line in completed.stderr.splitlines() if "refusing to start" in line]
    assert len(refusal) == 1
    assert "aws credentials failed: no AWS credentials found" in refusal[0]
    assert "Traceback" not in completed.stderr


@pytest.mark.timeout(120)
def test_a_warning_worker_starts_says_what_failed_and_health_learns_it(
    worker_env: dict[str, str], target: Target, tmp_path: Path, redis_url: str
) -> None:
    if not target.is_kubesim:
        pytest.skip("removes the AWS credentials a real cluster needs")
    client = redis.Redis.from_url(redis_url)
    process = WorkerProcess(
        {**worker_env, **NO_CREDENTIALS, "EKS_CLUSTER_NAME": "no-credentials"},
        tmp_path / "worker.log",
        concurrency=1,
    ).start()
    try:
        log = process.log()
        assert "Preflight: aws credentials failed: no AWS credentials found; fix:" in log
        reported = wait_until(
            lambda: [c for c in fleet.read_all(client) if c.cluster.startswith("no-credentials@")]
        )
        assert reported[0].status == "fail"
        assert reported[0].failed == ["aws credentials"]
    finally:
        process.stop()
        forget_checks(client, "no-credentials")
        client.close()
