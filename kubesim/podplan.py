"""What a Pod will do, chosen per Job by annotations, with the simulator's defaults.

Annotations on the Job or its pod template (the Job's win):

=====================================  ===============================================
``kubesim.eksops.io/outcome``          ``succeed`` (exit 0), ``fail`` (exit code, see
                                       below), ``oom`` (``OOMKilled``, exit 137),
                                       ``hang`` (runs until deleted or the deadline),
                                       ``image-pull-error`` (``ErrImagePull`` then
                                       ``ImagePullBackOff``, never starts),
                                       ``config-error`` (``CreateContainerConfigError``),
                                       ``unschedulable`` (stays Pending,
                                       ``PodScheduled=False`` ``Unschedulable``)
``kubesim.eksops.io/duration-seconds`` seconds from the Job's creation to its outcome,
                                       shared evenly by the pod attempts it takes
``kubesim.eksops.io/exit-code``        exit code of a failing container (default 1)
``kubesim.eksops.io/fail-first``       the first K pods fail, the later ones succeed
``kubesim.eksops.io/logs``             what the container prints (else derived from
                                       its command, see ``podlogs``)
``kubesim.eksops.io/message``          ``state.terminated.message`` of a failure
=====================================  ===============================================

``duration-seconds`` keeps the meaning it had before Pods existed - the time from
creation to the Job's outcome - so a failing Job with ``backoffLimit: 6`` still fails
after the duration: its 7 attempts run a seventh of it each, back to back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from kubesim.config import SimConfig

JSON = dict[str, Any]
PREFIX = "kubesim.eksops.io/"
OUTCOME_ANNOTATION = PREFIX + "outcome"
DURATION_ANNOTATION = PREFIX + "duration-seconds"
EXIT_CODE_ANNOTATION = PREFIX + "exit-code"
FAIL_FIRST_ANNOTATION = PREFIX + "fail-first"
LOGS_ANNOTATION = PREFIX + "logs"
MESSAGE_ANNOTATION = PREFIX + "message"
BEHAVIOURS = (
    "succeed",
    "fail",
    "oom",
    "hang",
    "image-pull-error",
    "config-error",
    "unschedulable",
)
NEVER_ENDS = ("hang", "image-pull-error", "config-error", "unschedulable")


@dataclass(frozen=True, slots=True)
class PodPlan:
    """The fate of one Pod: what it does, how long it runs, what it prints."""

    behaviour: str = "succeed"
    run_seconds: float = 2.0
    exit_code: int = 0
    logs: str | None = None
    message: str = ""

    def as_dict(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: JSON) -> PodPlan:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def ends(self) -> bool:
        return self.behaviour not in NEVER_ENDS

    @property
    def fails(self) -> bool:
        return self.behaviour in ("fail", "oom")


def annotations_of(job: JSON) -> dict[str, str]:
    template_meta = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return {
        **(template_meta.get("annotations") or {}),
        **(job["metadata"].get("annotations") or {}),
    }


def _number(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) and number >= 0 else default


def behaviour_of(annotations: dict[str, str], config: SimConfig) -> str:
    value = str(annotations.get(OUTCOME_ANNOTATION, config.default_outcome))
    return value if value in BEHAVIOURS else config.default_outcome


def _waves(count: int, parallelism: int) -> int:
    return max(1, math.ceil(count / max(1, parallelism)))


def attempts_needed(job: JSON, behaviour: str, fail_first: int) -> int:
    """How many back-to-back pod attempts the Job's outcome takes."""
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism") or 1)
    completions = spec.get("completions")
    successes = _waves(int(completions), parallelism) if completions else 1
    if behaviour in ("fail", "oom"):
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            return int(spec.get("backoffLimit") or 0) + 1
        return _waves(int(spec.get("backoffLimit") or 0) + 1, parallelism)
    return successes + (_waves(fail_first, parallelism) if fail_first else 0)


def plan_for_job_pod(job: JSON, config: SimConfig, failed_so_far: int) -> PodPlan:
    """The plan of the next Pod of ``job``, after ``failed_so_far`` failed attempts."""
    annotations = annotations_of(job)
    behaviour = behaviour_of(annotations, config)
    fail_first = int(_number(annotations.get(FAIL_FIRST_ANNOTATION), 0))
    duration = _number(annotations.get(DURATION_ANNOTATION), config.job_duration)
    if fail_first and behaviour == "succeed" and failed_so_far < fail_first:
        behaviour = "fail"
    run = duration / attempts_needed(
        job, behaviour if not fail_first else behaviour_of(annotations, config), fail_first
    )
    exit_code = int(_number(annotations.get(EXIT_CODE_ANNOTATION), 1)) or 1
    if behaviour == "oom":
        exit_code = 137
    elif behaviour != "fail":
        exit_code = 0
    return PodPlan(
        behaviour=behaviour,
        run_seconds=run,
        exit_code=exit_code,
        logs=annotations.get(LOGS_ANNOTATION),
        message=annotations.get(MESSAGE_ANNOTATION, ""),
    )


def plan_for_pod(pod: JSON, config: SimConfig) -> PodPlan:
    """The plan of a Pod created directly (no Job): its own annotations decide."""
    annotations = pod["metadata"].get("annotations") or {}
    behaviour = behaviour_of(annotations, config)
    exit_code = int(_number(annotations.get(EXIT_CODE_ANNOTATION), 1)) or 1
    if behaviour == "oom":
        exit_code = 137
    elif behaviour != "fail":
        exit_code = 0
    return PodPlan(
        behaviour=behaviour,
        run_seconds=_number(annotations.get(DURATION_ANNOTATION), config.job_duration),
        exit_code=exit_code,
        logs=annotations.get(LOGS_ANNOTATION),
        message=annotations.get(MESSAGE_ANNOTATION, ""),
    )
