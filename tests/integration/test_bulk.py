"""Bulk submission end to end: one call, many Jobs, one batch to follow."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from producer import EksOps
from producer.batches import BatchStatus
from tests.integration.conftest import job_manifest
from tests.support.processes import run_cli
from tests.support.waiting import wait_until
from worker.contracts import REQUEST_ID_LABEL, Operation
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration


def wait_for_batch(eksops: EksOps, batch_id: str, timeout: float = 60) -> BatchStatus:
    def done() -> BatchStatus | None:
        status = eksops.batch(batch_id)
        assert status is not None
        return status if status.done else None

    return wait_until(done, timeout=timeout, interval=0.2, describe=lambda: eksops.batch(batch_id))


def test_a_batch_of_jobs_runs_every_good_item_once(
    eksops: EksOps, kube: ClusterClient, namespace: str
) -> None:
    items = [{"job_manifest": job_manifest(), "namespace": namespace} for _ in range(40)]
    items.insert(
        7,
        {
            "job_manifest": {"spec": {"template": {"spec": {"containers": []}}}},
            "namespace": namespace,
        },
    )
    submission = eksops.submit_many(Operation.CREATE_JOB, items)
    assert (submission.accepted, submission.rejected) == (40, 1)
    assert submission.items[7].error is not None

    status = wait_for_batch(eksops, submission.batch_id)
    assert status.done
    assert (status.total, status.rejected, status.counts["succeeded"], status.counts["failed"]) == (
        40,
        1,
        40,
        0,
    )
    request_ids = {item.request_id for item in submission.items if item.request_id}
    jobs = kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]
    assert sorted(job["metadata"]["labels"][REQUEST_ID_LABEL] for job in jobs) == sorted(
        request_ids
    )
    one = next(iter(request_ids))
    assert eksops.result(one, timeout=5)["status"] == "created"


def test_failed_items_are_listed_with_their_errors(eksops: EksOps, namespace: str) -> None:
    clash = job_manifest("same-name")
    submission = eksops.submit_many(
        Operation.CREATE_JOB, [{"job_manifest": clash, "namespace": namespace} for _ in range(3)]
    )
    status = wait_for_batch(eksops, submission.batch_id)
    assert (status.counts["succeeded"], status.counts["failed"]) == (1, 2)
    assert {item.error.code for item in status.failed if item.error} == {"AlreadyExists"}


def test_the_cli_submits_a_jsonl_file_and_follows_the_batch(
    cli_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"job_manifest": job_manifest(), "request_id": str(uuid.uuid4())})
        for _ in range(12)
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    completed = run_cli(
        ["create-jobs", "-f", str(path), "-n", namespace, "--wait", "60", "--json"], cli_env
    )
    assert completed.returncode == 0, completed.stderr
    status = json.loads(completed.stdout)
    assert status["done"]
    assert status["counts"]["succeeded"] == 12

    again = run_cli(["create-jobs", "-f", str(path), "-n", namespace, "--json"], cli_env)
    assert json.loads(again.stdout)["duplicates"] == 12


def test_the_cli_submits_a_directory_of_manifests(
    cli_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    for index in range(3):
        (tmp_path / f"job-{index}.yaml").write_text(
            yaml.safe_dump(job_manifest(f"dir-job-{index}"))
        )
    (tmp_path / "two.yaml").write_text(
        yaml.safe_dump_all([job_manifest("dir-job-a"), job_manifest("dir-job-b")])
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    completed = run_cli(["create-jobs", "-f", str(tmp_path), "-n", namespace], cli_env)
    assert completed.returncode == 0, completed.stderr
    assert "5 enqueued, 0 already submitted, 0 refused" in completed.stdout
    batch_id = completed.stdout.split()[1].rstrip(":")
    polled = run_cli(["batch", batch_id, "--wait", "60", "--json"], cli_env)
    assert json.loads(polled.stdout)["counts"]["succeeded"] == 5
    too_many = run_cli(["batch", batch_id, "--failed-limit", "10001"], cli_env)
    assert too_many.returncode == 2
    assert "--failed-limit" in too_many.stderr


def test_the_cli_reports_refused_items_by_file_and_line_and_exits_1(
    cli_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    bad = job_manifest("bad")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # type: ignore[index]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in (job_manifest(), bad, job_manifest())) + "\n")
    completed = run_cli(["create-jobs", "-f", str(path), "-n", namespace], cli_env)
    assert completed.returncode == 1
    assert "2 enqueued" in completed.stdout
    assert f"{path}:2: Invalid create_job request" in completed.stderr
    assert "restartPolicy" in completed.stderr
