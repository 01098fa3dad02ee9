"""The CLI's control commands: cancel a request or a batch, retry failures, and a
request ID reused for another request (exit 2, one line). No worker runs here, so what
is queued stays queued until it is cancelled."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import job_manifest, write_manifest
from tests.support.processes import run_cli
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def idle_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    server = RedisServer(tmp_path / "idle").start()
    yield {"REDIS_URL": server.url}
    server.stop()


def test_a_queued_request_is_cancelled_and_then_reads_cancelled(
    idle_env: dict[str, str], tmp_path: Path
) -> None:
    path = write_manifest(tmp_path / "job.yaml", job_manifest())
    submitted = json.loads(run_cli(["create-job", "-f", str(path), "--json"], idle_env).stdout)
    rid = submitted["request_id"]
    cancelled = run_cli(["cancel", rid], idle_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"request {rid} cancelled: it will not run"
    polled = run_cli(["task", rid], idle_env)
    assert polled.returncode == 1  # it will never have a result
    assert (
        f"request {rid} cancelled: 409 Cancelled: Request {rid} was cancelled at" in polled.stderr
    )
    unknown = run_cli(["cancel", str(uuid.uuid4())], idle_env)
    assert unknown.returncode == 4
    assert "is unknown" in unknown.stderr


def test_a_request_id_reused_for_another_operation_exits_2_naming_it(
    idle_env: dict[str, str],
) -> None:
    rid = str(uuid.uuid4())
    first = run_cli(["create-namespace", "team-a", "--request-id", rid], idle_env)
    assert first.returncode == 0, first.stderr
    again = run_cli(["create-namespace", "team-a", "--request-id", rid], idle_env)
    assert again.returncode == 0  # the same request: a harmless duplicate
    other = run_cli(["delete-job", "foo", "--request-id", rid], idle_env)
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        f"error: Request ID {rid} was already used for create_namespace with other "
        "arguments; use a new request ID for a different request"
    ]


def test_a_batch_is_cancelled_and_a_batch_without_failures_has_nothing_to_retry(
    idle_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(json.dumps({"job_manifest": job_manifest()}) for _ in range(8)))
    batch = json.loads(run_cli(["create-jobs", "-f", str(path), "--json"], idle_env).stdout)
    bid = batch["batch_id"]
    done = run_cli(["batch", bid, "--cancel", "--json"], idle_env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["cancelled"], summary["running"], summary["ended"]) == (8, 0, 0)
    status = json.loads(run_cli(["batch", bid, "--json"], idle_env).stdout)
    assert status["counts"]["cancelled"] == 8
    assert status["done"] is True
    retry = run_cli(["batch", bid, "--retry-failed"], idle_env)
    assert retry.returncode == 1
    assert f"Batch {bid} has no failed requests to retry" in retry.stderr
    lonely = run_cli(["batch", bid, "--delete-jobs"], idle_env)
    assert lonely.returncode == 2
    assert "--delete-jobs goes with --cancel" in lonely.stderr
