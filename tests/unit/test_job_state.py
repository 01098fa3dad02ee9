"""A Job's state is derived from its conditions first, then from its counters."""

from __future__ import annotations

from typing import Any

import pytest

from worker.operations import job_state


def job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": spec, "status": status}


def condition(kind: str, status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status}


@pytest.mark.parametrize(
    ("manifest", "state"),
    [
        (job({}), "pending"),
        (job({"startTime": "t", "active": 1}), "running"),
        (job({"startTime": "t", "active": 1, "failed": 1}), "running"),
        (
            job(
                {
                    "startTime": "t",
                    "succeeded": 1,
                    "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
                }
            ),
            "completed",
        ),
        (
            job(
                {
                    "startTime": "t",
                    "failed": 7,
                    "conditions": [condition("FailureTarget"), condition("Failed")],
                }
            ),
            "failed",
        ),
        (job({"conditions": [condition("Suspended")]}, suspend=True), "suspended"),
        (job({"startTime": "t", "succeeded": 1}), "completed"),
        (job({"startTime": "t", "conditions": [condition("Complete", "False")]}), "unknown"),
    ],
)
def test_state_derivation(manifest: dict[str, Any], state: str) -> None:
    assert job_state(manifest) == state
