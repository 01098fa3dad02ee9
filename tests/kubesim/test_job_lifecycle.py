"""Jobs move through their lifecycle from the clock alone, steered by annotations."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client as k8s

from kubesim import DURATION_ANNOTATION, OUTCOME_ANNOTATION, AdminClient

from .conftest import job_manifest


def _annotated(name: str, outcome: str, seconds: str = "0.2", **extra: Any) -> dict[str, Any]:
    annotations = {OUTCOME_ANNOTATION: outcome, DURATION_ANNOTATION: seconds}
    return job_manifest(name, annotations=annotations, **extra)


def _conditions(job: Any) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in job.status.conditions or []]


def test_a_new_job_becomes_active_with_a_start_time(batch: k8s.BatchV1Api, namespace: str) -> None:
    created = batch.create_namespaced_job(namespace, _annotated("run", "hang"))
    running = batch.read_namespaced_job("run", namespace)

    assert created.status.active is None
    assert running.status.active == 1
    assert running.status.ready == 1
    assert running.status.start_time is not None
    assert running.status.conditions is None
    assert int(running.metadata.resource_version) > int(created.metadata.resource_version)


def test_a_succeeding_job_completes_with_k8s_1_31_conditions(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _annotated("ok", "succeed"))
    time.sleep(0.3)

    job = batch.read_namespaced_job_status("ok", namespace)

    assert job.status.succeeded == 1
    assert job.status.active is None
    assert job.status.completion_time is not None
    assert _conditions(job) == [
        ("SuccessCriteriaMet", "True", "CompletionsReached"),
        ("Complete", "True", "CompletionsReached"),
    ]
    assert job.status.conditions[1].message == "Reached expected number of succeeded pods"


def test_a_failing_job_exhausts_its_backoff_limit(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, _annotated("bad", "fail", spec={"backoffLimit": 2}))
    time.sleep(0.3)

    job = batch.read_namespaced_job("bad", namespace)

    assert job.status.failed == 3
    assert job.status.completion_time is None
    assert _conditions(job) == [
        ("FailureTarget", "True", "BackoffLimitExceeded"),
        ("Failed", "True", "BackoffLimitExceeded"),
    ]
    assert job.status.conditions[1].message == "Job has reached the specified backoff limit"


def test_a_hanging_job_stays_active(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, _annotated("stuck", "hang", "0"))
    time.sleep(0.1)

    job = batch.read_namespaced_job("stuck", namespace)

    assert job.status.active == 1
    assert job.status.conditions is None


def test_an_active_deadline_fails_a_hanging_job(batch: k8s.BatchV1Api, namespace: str) -> None:
    manifest = _annotated("late", "hang", spec={"activeDeadlineSeconds": 0})

    batch.create_namespaced_job(namespace, manifest)
    job = batch.read_namespaced_job("late", namespace)

    assert _conditions(job)[-1] == ("Failed", "True", "DeadlineExceeded")


def test_a_suspended_job_never_starts(batch: k8s.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(
        namespace, _annotated("paused", "succeed", "0", spec={"suspend": True})
    )
    time.sleep(0.05)

    job = batch.read_namespaced_job("paused", namespace)

    assert job.status.start_time is None
    assert _conditions(job) == [("Suspended", "True", "JobSuspended")]


def test_outcome_annotations_on_the_pod_template_also_count(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    manifest = job_manifest("tmpl")
    manifest["spec"]["template"]["metadata"] = {
        "annotations": {OUTCOME_ANNOTATION: "fail", DURATION_ANNOTATION: "0"}
    }

    batch.create_namespaced_job(namespace, manifest)

    assert batch.read_namespaced_job("tmpl", namespace).status.failed == 7


def test_defaults_for_unannotated_jobs_come_from_the_admin_config(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.configure(job_duration=0, default_outcome="fail")

    batch.create_namespaced_job(namespace, job_manifest("plain"))

    assert batch.read_namespaced_job("plain", namespace).status.failed == 7


def test_many_jobs_cost_nothing_until_read(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.configure(job_duration=0)
    for index in range(50):
        batch.create_namespaced_job(namespace, job_manifest(f"bulk-{index}"))

    listed = batch.list_namespaced_job(namespace)

    assert len(listed.items) == 50
    assert all(j.status.succeeded == 1 for j in listed.items)
