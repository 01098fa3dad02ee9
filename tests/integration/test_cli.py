"""The eksops CLI end to end, and one request's log lines across processes."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import job_manifest, write_manifest
from tests.support.processes import WorkerProcess, run_cli
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration

SEED_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| [A-Z]+ {0,8}\| .{20} \| .* \[[0-9a-f]{8}\]$"
)


def cli_json(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, object]]:
    completed = run_cli([*args, "--json"], env)
    return completed.returncode, json.loads(completed.stdout)


def test_all_five_operations_through_the_cli(
    cli_env: dict[str, str], kube: ClusterClient, namespace: str, tmp_path: Path
) -> None:
    path = write_manifest(tmp_path / "job.yaml", job_manifest("from-cli"))

    code, created_ns = cli_json(["create-namespace", namespace, "--wait", "30"], cli_env)
    assert (code, created_ns["state"]) == (0, "succeeded")
    assert created_ns["result"]["namespace_name"] == namespace  # type: ignore[index]

    code, created = cli_json(
        ["create-job", "-f", str(path), "-n", namespace, "--wait", "30"], cli_env
    )
    assert (code, created["state"]) == (0, "succeeded")
    assert created["result"]["job_name"] == "from-cli"  # type: ignore[index]
    assert kube.call(kube.batch.read_namespaced_job, name="from-cli", namespace=namespace)

    # A job's status is the seed's body itself (from the tracker's record, or the cluster).
    code, status = cli_json(["job-status", "from-cli", "-n", namespace, "--wait", "30"], cli_env)
    assert code == 0
    assert status["job_name"] == "from-cli"
    assert status["state"] in {"pending", "running", "completed"}

    code, deleted = cli_json(["delete-job", "from-cli", "-n", namespace, "--wait", "30"], cli_env)
    assert deleted["result"] == {
        "message": "Job from-cli deleted successfully",
        "status": "success",
    }

    code, gone = cli_json(["delete-namespace", namespace, "--wait", "30"], cli_env)
    assert gone["result"] == {
        "message": f"Namespace {namespace} deleted successfully",
        "status": "success",
    }


def test_a_failure_exits_non_zero_with_the_structured_error(
    cli_env: dict[str, str], namespace: str
) -> None:
    code, payload = cli_json(
        ["delete-job", "nonexistent-job", "-n", namespace, "--wait", "30"], cli_env
    )
    assert code == 1
    assert payload["state"] == "failed"
    assert payload["error"]["code"] == "NotFound"  # type: ignore[index]
    assert payload["error"]["http_status"] == 404  # type: ignore[index]
    assert "result" not in payload
    # A job's status is no request of its own: the error alone, with the same meaning.
    code, payload = cli_json(
        ["job-status", "nonexistent-job", "-n", namespace, "--wait", "30"], cli_env
    )
    assert code == 1
    assert payload["error"]["code"] == "NotFound"  # type: ignore[index]
    assert payload["error"]["http_status"] == 404  # type: ignore[index]


def test_submitting_without_wait_prints_the_request_id_and_task_polls_it(
    cli_env: dict[str, str], namespace: str
) -> None:
    rid = str(uuid.uuid4())
    code, submitted = cli_json(["create-namespace", namespace, "--request-id", rid], cli_env)
    assert code == 0
    assert submitted["request_id"] == rid
    code, final = cli_json(["task", rid, "--wait", "30"], cli_env)
    assert (code, final["state"]) == (0, "succeeded")
    # Resubmitting the same ID is a no-op that reports the same request.
    code, again = cli_json(
        ["create-namespace", namespace, "--request-id", rid, "--wait", "5"], cli_env
    )
    assert again == final


def test_an_unknown_request_id_exits_4(cli_env: dict[str, str]) -> None:
    code, payload = cli_json(["task", str(uuid.uuid4())], cli_env)
    assert (code, payload["state"]) == (4, "unknown")


def test_invalid_input_exits_2_and_names_the_problem(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    bad = job_manifest("bad")
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1  # type: ignore[index]
    completed = run_cli(
        ["create-job", "-f", str(write_manifest(tmp_path / "bad.yaml", bad))], cli_env
    )
    assert completed.returncode == 2
    assert "job_manifest.spec.template.spec.containers[0]" in completed.stderr
    assert "'bogus' was unexpected" in completed.stderr


def test_a_manifest_from_stdin_is_accepted(cli_env: dict[str, str], namespace: str) -> None:
    manifest = json.dumps(job_manifest("stdin-job"))
    completed = run_cli(
        ["create-job", "-f", "-", "-n", namespace, "--wait", "30", "--json"],
        cli_env,
        stdin=manifest,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["result"]["job_name"] == "stdin-job"


def test_one_request_is_traceable_by_its_tag_in_cli_and_worker_logs(
    cli_env: dict[str, str], worker: WorkerProcess, namespace: str
) -> None:
    rid = str(uuid.uuid4())
    tag = f"[{rid.replace('-', '')[:8]}]"
    completed = run_cli(
        ["create-namespace", namespace, "--request-id", rid, "--wait", "30"],
        {**cli_env, "LOG_LEVEL": "INFO"},
    )
    assert completed.returncode == 0, completed.stderr

    cli_lines = [line for line in completed.stderr.splitlines() if tag in line]
    assert any(
        "| client               | Submitted create_namespace namespace=" in line
        for line in cli_lines
    )
    assert all(SEED_LINE.match(line) for line in cli_lines), cli_lines

    worker_lines = [line for line in worker.log().splitlines() if line.endswith(tag)]
    messages = [line.split(" | ", 3)[3] for line in worker_lines]
    assert any(m.startswith(f"START create_namespace namespace={namespace}") for m in messages)
    assert any(
        re.match(r"END create_namespace success=true duration_ms=\d+\.\d \[", m) for m in messages
    )
    assert any("eksops.create_namespace" in m and "received" in m for m in messages)
    assert all(SEED_LINE.match(line) for line in worker_lines), worker_lines


def test_create_job_waits_for_the_job_itself_and_exits_as_it_ended(
    cli_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    good = write_manifest(tmp_path / "good.yaml", job_manifest("cli-good"))
    completed = run_cli(
        ["create-job", "-f", str(good), "-n", namespace, "--wait-for", "complete", "--wait", "60"],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"job {namespace}/cli-good is completed" in completed.stdout

    bad = write_manifest(
        tmp_path / "bad.yaml",
        job_manifest(
            "cli-bad", **{"kubesim.eksops.io/outcome": "fail", "kubesim.eksops.io/exit-code": "7"}
        ),
    )
    code, body = cli_json(
        ["create-job", "-f", str(bad), "-n", namespace, "--wait-for", "complete", "--wait", "60"],
        cli_env,
    )
    assert code == 1
    assert (body["state"], body["reason"]) == ("failed", "BackoffLimitExceeded")
    assert body["failed_pods"][0]["exit_code"] == 7

    text = run_cli(["job-status", "cli-bad", "-n", namespace], cli_env)
    assert text.returncode == 1
    assert "exit code 7" in text.stderr


def test_job_status_comes_from_the_record_and_job_logs_print_the_lines(
    cli_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    manifest = job_manifest("cli-logs")
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["echo", "hi there"]  # type: ignore[index]
    path = write_manifest(tmp_path / "logs.yaml", manifest)
    run_cli(
        ["create-job", "-f", str(path), "-n", namespace, "--wait-for", "complete", "--wait", "60"],
        cli_env,
    )
    code, status = cli_json(["job-status", "cli-logs", "-n", namespace], cli_env)
    assert (code, status["state"], status["source"]) == (0, "completed", "tracker")
    logs = run_cli(["job-logs", "cli-logs", "-n", namespace, "--tail", "5"], cli_env)
    assert logs.returncode == 0, logs.stderr
    assert "hi there" in logs.stdout.splitlines()
