"""Every Job followed to its end by the job tracker: records, reasons, logs, status reads."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim import Simulator
from producer import EksOps
from tests.integration.conftest import job_manifest
from tests.support.waiting import wait_until
from worker.errors import NotFound
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration

OUTCOME = "kubesim.eksops.io/outcome"


def manifest(name: str, *, deadline: int | None = None, **annotations: str) -> dict[str, Any]:
    body = job_manifest(name, **annotations)
    if deadline is not None:
        body["spec"]["activeDeadlineSeconds"] = deadline  # type: ignore[index]
    return body


def tracked(eksops: EksOps) -> None:
    """Wait until the tracker covers the default cluster (it starts with the worker)."""
    from producer import jobs  # noqa: PLC0415

    wait_until(lambda: jobs.coverage(eksops.redis, jobs.cluster_key(eksops.redis, None)).current)


def test_a_job_is_followed_to_success_and_its_status_costs_no_api_call(
    eksops: EksOps, namespace: str, sim: Simulator
) -> None:
    tracked(eksops)
    submission = eksops.create_job(manifest("happy"), namespace)
    record = eksops.wait_for_job(submission.request_id, 60)
    assert record.phase == "succeeded"
    assert record.request_id == submission.request_id
    assert record.job["succeeded"] == 1
    assert record.job["completion_time"]
    sim.admin.clear_counters()
    for _ in range(20):
        status = eksops.job_status("happy", namespace)
        assert (status["state"], status["source"]) == ("completed", "tracker")
    assert sim.admin.count("get", "jobs") == 0
    assert sim.admin.count("list", "jobs") == 0


@pytest.mark.parametrize(
    ("annotations", "deadline", "reason", "pod_reason", "exit_code", "last_line"),
    [
        (
            {OUTCOME: "fail", "kubesim.eksops.io/exit-code": "3"},
            None,
            "BackoffLimitExceeded",
            "Error",
            3,
            "exit status 3",
        ),
        ({OUTCOME: "oom"}, None, "BackoffLimitExceeded", "OOMKilled", 137, "Killed"),
        (
            {OUTCOME: "image-pull-error"},
            3,
            "DeadlineExceeded",
            "ErrImagePull|ImagePullBackOff",
            None,
            None,
        ),
        ({OUTCOME: "unschedulable"}, 3, "DeadlineExceeded", "Unschedulable", None, None),
        (
            {OUTCOME: "config-error"},
            3,
            "DeadlineExceeded",
            "CreateContainerConfigError",
            None,
            None,
        ),
        (
            {OUTCOME: "fail", "kubesim.eksops.io/message": "input shard 7 is corrupt"},
            None,
            "BackoffLimitExceeded",
            "Error",
            1,
            "input shard 7 is corrupt",
        ),
    ],
    ids=["exit-code", "oom", "image-pull", "unschedulable", "config-error", "message"],
)
def test_each_failure_is_recorded_with_its_reason_exit_code_and_log_tail(
    eksops: EksOps,
    namespace: str,
    sim: Simulator,
    annotations: dict[str, str],
    deadline: int | None,
    reason: str,
    pod_reason: str,
    exit_code: int | None,
    last_line: str | None,
) -> None:
    tracked(eksops)
    name = f"doomed-{pod_reason.split('|', maxsplit=1)[0].lower()}"
    submission = eksops.create_job(manifest(name, deadline=deadline, **annotations), namespace)
    if exit_code is None:  # why it is not running shows while it waits
        waiting = wait_until(
            lambda: (r := eksops.job(name, namespace)) and r.summary()["waiting"], timeout=30
        )
        assert waiting[0]["reason"] in pod_reason.split("|")
        assert waiting[0]["message"]
    record = eksops.wait_for_job(submission.request_id, 60)
    assert record.phase == "failed"
    assert record.job["reason"] == reason
    if exit_code is not None:
        (failed,) = record.summary()["failed_pods"]
        assert (failed["reason"], failed["exit_code"]) == (pod_reason, exit_code)
        log = wait_until(lambda: (r := eksops.job(name, namespace)) and r.log, timeout=30)
        assert log["container"] == "main"
        assert last_line in log["lines"][-1]
    status = eksops.job_status(name, namespace)
    assert (status["state"], status["reason"]) == ("failed", reason)


def test_a_job_past_its_deadline_is_failed_with_deadline_exceeded(
    eksops: EksOps, namespace: str
) -> None:
    tracked(eksops)
    body = manifest("slowpoke", deadline=2, **{OUTCOME: "hang"})
    submission = eksops.create_job(body, namespace)
    record = eksops.wait_for_job(submission.request_id, 60)
    assert (record.phase, record.job["reason"]) == ("failed", "DeadlineExceeded")
    assert "active longer than specified deadline" in (record.job["message"] or "")


def test_a_pod_failure_policy_match_fails_the_job_with_its_rule(
    eksops: EksOps, namespace: str
) -> None:
    tracked(eksops)
    body = manifest("policed", **{OUTCOME: "fail", "kubesim.eksops.io/exit-code": "42"})
    spec: dict[str, Any] = body["spec"]  # type: ignore[assignment]
    spec["backoffLimit"] = 5
    spec["podFailurePolicy"] = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    record = eksops.wait_for_job(eksops.create_job(body, namespace).request_id, 60)
    assert (record.phase, record.job["reason"]) == ("failed", "PodFailurePolicy")
    assert "failed with exit code 42 matching FailJob rule at index 0" in record.job["message"]
    (failed,) = record.summary()["failed_pods"]
    assert failed["exit_code"] == 42


def test_a_job_deleted_before_it_ended_is_recorded_as_deleted(
    eksops: EksOps, namespace: str, kube: ClusterClient
) -> None:
    tracked(eksops)
    submission = eksops.create_job(manifest("doomed-to-go", **{OUTCOME: "hang"}), namespace)
    wait_until(lambda: (r := eksops.job("doomed-to-go", namespace)) and r.phase == "running")
    eksops.result(eksops.delete_job("doomed-to-go", namespace).request_id, 30)
    record = eksops.wait_for_job(submission.request_id, 30)
    assert record.phase == "deleted"
    assert record.removed_at
    with pytest.raises(NotFound, match="Job doomed-to-go not found in namespace"):
        eksops.job_status("doomed-to-go", namespace)


def test_a_job_eksops_did_not_create_is_read_from_the_cluster(
    eksops: EksOps, namespace: str, kube: ClusterClient
) -> None:
    tracked(eksops)
    eksops.result(eksops.create_namespace(namespace).request_id, 30)
    foreign = manifest("foreign")
    kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=foreign)
    status = eksops.job_status("foreign", namespace)
    assert status["source"] == "cluster"
    with pytest.raises(NotFound):
        eksops.job_status("nonexistent", namespace)


def test_a_batch_is_a_job_set_with_phases_and_failed_jobs_with_their_reasons(
    eksops: EksOps, namespace: str
) -> None:
    tracked(eksops)
    items = [{"job_manifest": manifest(f"set-{i}"), "namespace": namespace} for i in range(6)]
    items += [
        {
            "job_manifest": manifest(
                "set-bad", **{OUTCOME: "fail", "kubesim.eksops.io/exit-code": "9"}
            ),
            "namespace": namespace,
        }
    ]
    from worker.contracts import Operation  # noqa: PLC0415

    batch = eksops.submit_many(Operation.CREATE_JOB, items)
    status = wait_until(
        lambda: (s := eksops.batch(batch.batch_id)) and s.done and s.jobs_done and s,
        timeout=60,
        interval=0.2,
    )
    assert status.jobs["succeeded"] == 6
    assert status.jobs["failed"] == 1
    (failed,) = status.failed_jobs
    assert (failed.job_name, failed.reason, failed.exit_code) == (
        "set-bad",
        "BackoffLimitExceeded",
        9,
    )
    assert failed.request_id in {item.request_id for item in batch.items}
