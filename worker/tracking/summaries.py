"""From a Job or Pod object to what its record says: phase, counts, reasons, failures.

Pure functions of one object (what a watch event carries), so the tracker keeps no
state per Job in memory: a record is rewritten from each event.

Phase, from the Job's conditions first, then its counters: ``succeeded`` (Complete or
SuccessCriteriaMet), ``failed`` (Failed or FailureTarget, with the condition's reason
such as ``BackoffLimitExceeded``, ``DeadlineExceeded``, ``PodFailurePolicy``),
``suspended``, ``running`` (a pod active), else ``pending``. A Pod's summary says why
it is not running (a waiting reason such as ``ImagePullBackOff``, ``ErrImagePull``,
``CreateContainerConfigError``, or ``Unschedulable`` with the scheduler's message) or
how it failed (each container's termination: exit code, reason such as ``OOMKilled``
or ``Error``, message, times).
"""

from __future__ import annotations

from typing import Any

from worker.jobrecords import Phase

_SUCCESS = ("Complete", "SuccessCriteriaMet")
_FAILURE = ("Failed", "FailureTarget")


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in conditions if c.get("status") == "True"}


def job_phase(job: dict[str, Any]) -> Phase:
    """Return the phase of a Job object."""
    status = job.get("status") or {}
    true = _true_conditions(job)
    if any(name in true for name in _SUCCESS):
        return "succeeded"
    if any(name in true for name in _FAILURE):
        return "failed"
    if "Suspended" in true or (job.get("spec") or {}).get("suspend"):
        return "suspended"
    if status.get("active") or status.get("ready"):
        return "running"
    return "pending"


def job_summary(job: dict[str, Any]) -> dict[str, Any]:
    """Return the Job-level part of a record: counts, times, reason and message."""
    status = job.get("status") or {}
    true = _true_conditions(job)
    ending = next((true[name] for name in (*_FAILURE, *_SUCCESS) if name in true), None)
    return {
        "active": status.get("active") or 0,
        "succeeded": status.get("succeeded") or 0,
        "failed": status.get("failed") or 0,
        "ready": status.get("ready") or 0,
        "terminating": status.get("terminating") or 0,
        "start_time": status.get("startTime"),
        "completion_time": status.get("completionTime"),
        "created_at": (job.get("metadata") or {}).get("creationTimestamp"),
        "reason": ending.get("reason") if ending else None,
        "message": ending.get("message") if ending else None,
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k)}
            for c in status.get("conditions") or []
        ],
    }


def _container(status: dict[str, Any]) -> dict[str, Any]:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated")
    summary: dict[str, Any] = {"restarts": status.get("restartCount") or 0}
    if "waiting" in state:
        waiting = state["waiting"] or {}
        summary.update(
            state="waiting", reason=waiting.get("reason"), message=waiting.get("message")
        )
    elif "running" in state:
        summary.update(state="running", started_at=(state["running"] or {}).get("startedAt"))
    elif "terminated" in state:
        summary["state"] = "terminated"
        last = state["terminated"]
    if last:
        summary["terminated"] = {
            "exit_code": last.get("exitCode"),
            "reason": last.get("reason"),
            "message": last.get("message"),
            "started_at": last.get("startedAt"),
            "finished_at": last.get("finishedAt"),
        }
    return {key: value for key, value in summary.items() if value is not None}


def pod_summary(pod: dict[str, Any], *, seen: str) -> dict[str, Any]:
    """Return a Pod's part of its Job's record: phase, why it waits, how it ended."""
    status = pod.get("status") or {}
    containers = {
        c.get("name", "?"): _container(c)
        for c in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
    }
    summary: dict[str, Any] = {"phase": status.get("phase") or "Pending", "seen": seen}
    if containers:
        summary["containers"] = containers
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    waiting = [c for c in containers.values() if c.get("state") == "waiting" and c.get("reason")]
    if scheduled is not None and scheduled.get("status") == "False":
        summary.update(reason=scheduled.get("reason"), message=scheduled.get("message"))
    elif waiting and waiting[0].get("reason") not in ("ContainerCreating", "PodInitializing"):
        summary.update(reason=waiting[0]["reason"], message=waiting[0].get("message"))
    failed = failed_containers(pod)
    if failed or summary["phase"] == "Failed":
        summary["failed"] = True
        if failed:
            first = containers[failed[0]]["terminated"]
            summary.update(
                reason=first.get("reason"), exit_code=first.get("exit_code"), container=failed[0]
            )
    return summary


def failed_containers(pod: dict[str, Any]) -> list[str]:
    """Return the containers of ``pod`` whose last termination was a failure."""
    status = pod.get("status") or {}
    names = []
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        ended = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
        if ended and (ended.get("exitCode") not in (0, None) or ended.get("reason") == "OOMKilled"):
            names.append(container.get("name", "?"))
    return names


def job_of_pod(pod: dict[str, Any]) -> str | None:
    """Return the name of the Job that owns ``pod`` (its controller reference)."""
    metadata = pod.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("controller"):
            return str(owner.get("name"))
    labels = metadata.get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    return str(name) if name else None
