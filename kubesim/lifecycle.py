"""A Job's status as the job controller would have written it by now.

No timers: the status is a pure function of the creation time, the chosen outcome
and duration, and the clock. When a read finds the Job in a new phase, the stored
status and ``resourceVersion`` are updated once, as the controller's status write
would have done. Condition types, reasons and messages are those of
``pkg/controller/job/job_controller.go`` in Kubernetes 1.31 (``SuccessCriteriaMet``
then ``Complete``; ``FailureTarget`` then ``Failed``).

Tests pick the outcome per Job with annotations (on the Job or its pod template):
``kubesim.eksops.io/outcome`` = succeed | fail | hang and
``kubesim.eksops.io/duration-seconds`` = a float.
"""

from __future__ import annotations

from typing import Any

from kubesim.config import OUTCOMES, SimConfig
from kubesim.store import Record, Store, rfc3339

JSON = dict[str, Any]
OUTCOME_ANNOTATION = "kubesim.eksops.io/outcome"
DURATION_ANNOTATION = "kubesim.eksops.io/duration-seconds"
_REASONS = {
    "complete": ("CompletionsReached", "Reached expected number of succeeded pods"),
    "failed": ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    "deadline": ("DeadlineExceeded", "Job was active longer than specified deadline"),
}


def choose(job: JSON, config: SimConfig) -> tuple[str, float]:
    """Outcome and duration for a new Job: annotations first, then the defaults."""
    template_meta = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotations = {
        **(template_meta.get("annotations") or {}),
        **(job["metadata"].get("annotations") or {}),
    }
    outcome = str(annotations.get(OUTCOME_ANNOTATION, config.default_outcome))
    if outcome not in OUTCOMES:
        outcome = config.default_outcome
    try:
        duration = max(0.0, float(annotations.get(DURATION_ANNOTATION, config.job_duration)))
    except (TypeError, ValueError):
        duration = config.job_duration
    return outcome, duration


def _phase(record: Record, now: float) -> tuple[str, float]:
    """The phase and the moment it began."""
    spec = record.obj["spec"]
    if spec.get("suspend"):
        return "suspended", record.created
    if record.being_deleted:
        return record.phase or "running", record.extra.get("phase_since", record.created)
    deadline = spec.get("activeDeadlineSeconds")
    end = record.created + record.duration
    ends_first = deadline is not None and (
        record.outcome == "hang" or record.created + deadline < end
    )
    if ends_first and now >= record.created + deadline:
        return "deadline", record.created + deadline
    if record.outcome != "hang" and now >= end:
        return ("complete" if record.outcome == "succeed" else "failed"), end
    return "running", record.created


def _condition(kind: str, reason: str, message: str, when: float) -> JSON:
    stamp = rfc3339(when)
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _status(record: Record, phase: str, since: float) -> JSON:
    spec = record.obj["spec"]
    parallelism = int(spec.get("parallelism") or 0)
    if phase == "suspended":
        cond = _condition("Suspended", "JobSuspended", "Job suspended", since)
        return {"conditions": [cond], "active": 0, "ready": 0, "terminating": 0}
    start = rfc3339(record.created)
    if phase == "running":
        return {
            "startTime": start,
            "active": parallelism,
            "ready": parallelism,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
    reason, message = _REASONS[phase]
    if phase == "complete":
        conditions = [
            _condition("SuccessCriteriaMet", reason, message, since),
            _condition("Complete", reason, message, since),
        ]
        succeeded = int(spec.get("completions") or parallelism or 1)
        return {
            "conditions": conditions,
            "startTime": start,
            "completionTime": rfc3339(since),
            "succeeded": succeeded,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
    conditions = [
        _condition("FailureTarget", reason, message, since),
        _condition("Failed", reason, message, since),
    ]
    failed = int(spec.get("backoffLimit") or 0) + 1 if phase == "failed" else parallelism
    return {
        "conditions": conditions,
        "startTime": start,
        "failed": failed,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }


def refresh(store: Store, record: Record, now: float) -> None:
    """Bring the stored status up to ``now``; bumps resourceVersion on a change."""
    phase, since = _phase(record, now)
    if phase == record.phase:
        return
    record.phase = phase
    record.extra["phase_since"] = since
    record.obj["status"] = _status(record, phase, since)
    record.obj["metadata"]["resourceVersion"] = store.next_rv()


def has_running_pods(record: Record) -> bool:
    return record.phase == "running"
