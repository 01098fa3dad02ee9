"""Jobs run Pods through the job controller, steered by annotations."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubesim import DURATION_ANNOTATION, OUTCOME_ANNOTATION, AdminClient

from .conftest import job_manifest
from .helpers import eventually


def _annotated(name: str, outcome: str, seconds: str = "0.2", **extra: Any) -> dict[str, Any]:
    annotations = {OUTCOME_ANNOTATION: outcome, DURATION_ANNOTATION: seconds}
    return job_manifest(name, annotations=annotations, **extra)


def _conditions(job: Any) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in job.status.conditions or []]


def _finished(batch: k8s.BatchV1Api, name: str, namespace: str) -> Any:
    def probe() -> Any:
        job = batch.read_namespaced_job(name, namespace)
        types = {c.type for c in job.status.conditions or [] if c.status == "True"}
        return job if types & {"Complete", "Failed"} else None

    return eventually(probe)


def test_a_new_job_is_active_at_once_and_ready_once_its_pod_runs(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    created = batch.create_namespaced_job(namespace, _annotated("run", "hang"))
    running = batch.read_namespaced_job("run", namespace)

    assert created.status.active is None
    assert running.status.active == 1
    assert running.status.start_time is not None
    assert running.status.conditions is None
    assert int(running.metadata.resource_version) > int(created.metadata.resource_version)
    eventually(lambda: batch.read_namespaced_job("run", namespace).status.ready == 1)


def test_a_succeeding_job_completes_with_k8s_1_31_conditions(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _annotated("ok", "succeed"))

    job = _finished(batch, "ok", namespace)

    assert job.status.succeeded == 1
    assert job.status.active is None
    assert job.status.completion_time is not None
    assert _conditions(job) == [
        ("SuccessCriteriaMet", "True", "CompletionsReached"),
        ("Complete", "True", "CompletionsReached"),
    ]
    assert job.status.conditions[1].message == "Reached expected number of succeeded pods"


def test_a_failing_job_exhausts_its_backoff_limit_one_pod_at_a_time(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _annotated("bad", "fail", spec={"backoffLimit": 2}))

    job = _finished(batch, "bad", namespace)

    assert job.status.failed == 3
    assert job.status.completion_time is None
    assert _conditions(job) == [
        ("FailureTarget", "True", "BackoffLimitExceeded"),
        ("Failed", "True", "BackoffLimitExceeded"),
    ]
    assert job.status.conditions[1].message == "Job has reached the specified backoff limit"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=bad").items
    assert sorted(p.status.phase for p in pods) == ["Failed"] * 3


def test_a_hanging_job_stays_active(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, _annotated("stuck", "hang", "0"))

    job = eventually(lambda: batch.read_namespaced_job("stuck", namespace))

    assert job.status.active == 1
    assert job.status.conditions is None


def test_an_active_deadline_fails_a_hanging_job_and_kills_its_pod(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _annotated("late", "hang", spec={"activeDeadlineSeconds": 0})

    batch.create_namespaced_job(namespace, manifest)
    job = _finished(batch, "late", namespace)

    assert _conditions(job) == [
        ("FailureTarget", "True", "DeadlineExceeded"),
        ("Failed", "True", "DeadlineExceeded"),
    ]
    assert job.status.conditions[1].message == "Job was active longer than specified deadline"


def test_a_suspended_job_never_starts(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(
        namespace, _annotated("paused", "succeed", "0", spec={"suspend": True})
    )

    job = eventually(
        lambda: (j := batch.read_namespaced_job("paused", namespace)).status.conditions and j
    )

    assert job.status.start_time is None
    assert _conditions(job) == [("Suspended", "True", "JobSuspended")]


def test_outcome_annotations_on_the_pod_template_also_count(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    manifest = job_manifest("tmpl")
    manifest["spec"]["template"]["metadata"] = {
        "annotations": {OUTCOME_ANNOTATION: "fail", DURATION_ANNOTATION: "0.1"}
    }

    batch.create_namespaced_job(namespace, manifest)

    assert _finished(batch, "tmpl", namespace).status.failed == 7


def test_defaults_for_unannotated_jobs_come_from_the_admin_config(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.configure(job_duration=0.1, default_outcome="fail")

    batch.create_namespaced_job(namespace, job_manifest("plain"))

    assert _finished(batch, "plain", namespace).status.failed == 7


def test_fifty_jobs_all_complete(admin: AdminClient, batch: k8s.BatchV1Api, namespace: str) -> None:
    admin.configure(job_duration=0.05)
    for index in range(50):
        batch.create_namespaced_job(namespace, job_manifest(f"bulk-{index}"))

    def all_done() -> bool:
        listed = batch.list_namespaced_job(namespace)
        return len(listed.items) == 50 and all(j.status.succeeded == 1 for j in listed.items)

    eventually(all_done)
