"""Settings of producer processes (library, CLI, HTTP gateway).

Extends the settings every eksops process shares (logging, request limits) with what
only producers need. Broker and result backend come from
:class:`worker.settings.QueueSettings`, as in every process.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from worker.settings import SharedSettings


class ProducerSettings(SharedSettings):
    """What a producer needs beyond the queue: how long callers may wait, the audit sink."""

    wait_max_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Where audit lines go (producer.audit): "log" (the eksops.audit logger) or "file:PATH".
    audit_sink: str = "log"

    @field_validator("audit_sink")
    @classmethod
    def _check_sink(cls, value: str) -> str:
        if value == "log":
            return value
        if not value.startswith("file:") or not value.removeprefix("file:"):
            raise ValueError("give 'log' or 'file:PATH'")
        folder = Path(value.removeprefix("file:")).parent
        if not folder.is_dir():
            raise ValueError(f"directory {folder} does not exist")
        return value
