"""Pods of Jobs: names, labels, owners, statuses per planned behaviour, and events."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubesim.podplan import (
    DURATION_ANNOTATION,
    EXIT_CODE_ANNOTATION,
    FAIL_FIRST_ANNOTATION,
    MESSAGE_ANNOTATION,
    OUTCOME_ANNOTATION,
)

from .conftest import job_manifest
from .helpers import eventually


def _job(name: str, **annotations: str) -> dict[str, Any]:
    return job_manifest(name, annotations={DURATION_ANNOTATION: "0.2", **annotations})


def _pods(core: k8s.CoreV1Api, namespace: str, job: str) -> list[Any]:
    return core.list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    ).items


def _one_pod(core: k8s.CoreV1Api, namespace: str, job: str, check: Any) -> Any:
    def probe() -> Any:
        pods = _pods(core, namespace, job)
        return pods[0] if pods and check(pods[0]) else None

    return eventually(probe)


def _events(core: k8s.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    ).items
    return [(e.type, e.reason, e.message) for e in found]


def test_a_job_pod_carries_the_controllers_name_labels_and_owner(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    job = batch.create_namespaced_job(namespace, _job("owned"))
    pod = _one_pod(core, namespace, "owned", lambda p: True)

    uid = job.metadata.uid
    assert pod.metadata.name.startswith("owned-")
    assert len(pod.metadata.name) == len("owned-") + 5
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "owned"
    assert pod.metadata.labels["job-name"] == "owned"
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
    assert pod.metadata.labels["controller-uid"] == uid
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == (
        "Job",
        "owned",
        uid,
        True,
        True,
    )
    assert ("Normal", "SuccessfulCreate", f"Created pod: {pod.metadata.name}") in _events(
        core, namespace, "owned"
    )


def test_a_succeeded_pod_has_a_completed_terminated_state_and_kubelet_events(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _job("done"))
    pod = _one_pod(core, namespace, "done", lambda p: p.status.phase == "Succeeded")

    (status,) = pod.status.container_statuses
    terminated = status.state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert terminated.started_at is not None
    assert terminated.finished_at is not None
    assert status.container_id.startswith("containerd://")
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "PodCompleted")
    reasons = [reason for _, reason, _ in _events(core, namespace, pod.metadata.name)]
    assert reasons[0] == "Scheduled"
    assert {"Pulled", "Created", "Started"} <= set(reasons)


def test_a_failing_pod_exits_with_the_annotated_code_and_message(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _job(
        "boom",
        **{OUTCOME_ANNOTATION: "fail", EXIT_CODE_ANNOTATION: "42", MESSAGE_ANNOTATION: "disk full"},
    )
    manifest["spec"]["backoffLimit"] = 0
    batch.create_namespaced_job(namespace, manifest)
    pod = _one_pod(core, namespace, "boom", lambda p: p.status.phase == "Failed")

    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        42,
        "Error",
        "disk full",
    )
    assert (
        core.read_namespaced_pod_log(pod.metadata.name, namespace).splitlines()[-1] == "disk full"
    )


def test_an_oom_killed_pod_exits_137(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _job("oom", **{OUTCOME_ANNOTATION: "oom"})
    manifest["spec"]["backoffLimit"] = 0
    batch.create_namespaced_job(namespace, manifest)
    pod = _one_pod(core, namespace, "oom", lambda p: p.status.phase == "Failed")

    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")


def test_an_image_pull_failure_goes_from_err_image_pull_to_back_off_and_never_starts(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _job("pull", **{OUTCOME_ANNOTATION: "image-pull-error"}))

    def waiting(reason: str) -> Any:
        def check(pod: Any) -> bool:
            statuses = pod.status.container_statuses or []
            return (
                bool(statuses)
                and bool(statuses[0].state.waiting)
                and (statuses[0].state.waiting.reason == reason)
            )

        return _one_pod(core, namespace, "pull", check)

    first = waiting("ErrImagePull")
    assert (
        "failed to pull and unpack image"
        in first.status.container_statuses[0].state.waiting.message
    )
    pod = waiting("ImagePullBackOff")
    assert pod.status.phase == "Pending"
    events = _events(core, namespace, pod.metadata.name)
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in events
    assert any(r == "BackOff" and m.startswith("Back-off pulling image") for _, r, m in events)


def test_an_unschedulable_pod_stays_pending_with_the_schedulers_reason(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _job("nowhere", **{OUTCOME_ANNOTATION: "unschedulable"}))
    pod = _one_pod(core, namespace, "nowhere", lambda p: bool(p.status.conditions))

    (scheduled,) = pod.status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert scheduled.message.startswith("0/1 nodes are available: 1 Insufficient cpu.")
    assert pod.spec.node_name is None
    assert ("Warning", "FailedScheduling", scheduled.message) in _events(
        core, namespace, pod.metadata.name
    )


def test_a_config_error_waits_with_create_container_config_error(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _job("cfg", **{OUTCOME_ANNOTATION: "config-error"}))
    pod = _one_pod(
        core,
        namespace,
        "cfg",
        lambda p: (
            bool(p.status.container_statuses)
            and bool(p.status.container_statuses[0].state.waiting)
            and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        ),
    )
    assert pod.status.phase == "Pending"


def test_fail_first_k_pods_then_succeed_exercises_the_backoff_limit(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, _job("retry", **{FAIL_FIRST_ANNOTATION: "2"}))

    def done() -> Any:
        job = batch.read_namespaced_job("retry", namespace)
        return job if job.status.succeeded else None

    job = eventually(done)
    assert (job.status.failed, job.status.succeeded) == (2, 1)


def test_on_failure_restarts_the_container_in_place_with_last_state(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _job("again", **{FAIL_FIRST_ANNOTATION: "1", EXIT_CODE_ANNOTATION: "3"})
    manifest["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch.create_namespaced_job(namespace, manifest)

    pod = _one_pod(
        core,
        namespace,
        "again",
        lambda p: (
            (p.status.container_statuses or [None])[0] is not None
            and p.status.container_statuses[0].restart_count == 1
        ),
    )
    last = pod.status.container_statuses[0].last_state.terminated
    assert (last.exit_code, last.reason) == (3, "Error")


def test_a_pod_failure_policy_fail_job_rule_fails_the_job_at_once(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    manifest = _job("policy", **{OUTCOME_ANNOTATION: "fail", EXIT_CODE_ANNOTATION: "42"})
    manifest["spec"]["podFailurePolicy"] = {
        "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    }

    def failed() -> Any:
        job = batch.read_namespaced_job("policy", namespace)
        return job if any(c.type == "Failed" for c in job.status.conditions or []) else None

    job_obj = batch.create_namespaced_job(namespace, manifest)
    del job_obj
    job = eventually(failed)
    condition = next(c for c in job.status.conditions if c.type == "Failed")
    assert condition.reason == "PodFailurePolicy"
    assert condition.message.startswith("Container main for pod ")
    assert condition.message.endswith("failed with exit code 42 matching FailJob rule at index 0")
    assert job.status.failed == 1


def test_ttl_after_finished_deletes_the_job_and_its_pods(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _job("brief")
    manifest["spec"]["ttlSecondsAfterFinished"] = 0
    batch.create_namespaced_job(namespace, manifest)

    eventually(lambda: not batch.list_namespaced_job(namespace).items)
    eventually(lambda: not _pods(core, namespace, "brief"))


def test_logs_follow_the_command_and_a_failure_adds_a_last_line(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    manifest = _job("talk", **{OUTCOME_ANNOTATION: "fail", EXIT_CODE_ANNOTATION: "2"})
    manifest["spec"]["backoffLimit"] = 0
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "sh",
        "-c",
        "echo one; echo 'two words'; exit 2",
    ]
    batch.create_namespaced_job(namespace, manifest)
    pod = _one_pod(core, namespace, "talk", lambda p: p.status.phase == "Failed")
    name = pod.metadata.name

    assert core.read_namespaced_pod_log(name, namespace) == "one\ntwo words\nexit status 2\n"
    assert core.read_namespaced_pod_log(name, namespace, tail_lines=1) == "exit status 2\n"
    stamped = core.read_namespaced_pod_log(name, namespace, timestamps=True).splitlines()[0]
    assert stamped.endswith("Z one")
    assert stamped[10] == "T"
    assert core.read_namespaced_pod_log(name, namespace, limit_bytes=3) == "one"
