"""Settings of producer processes (library, CLI, HTTP gateway).

Extends the settings every eksops process shares (logging, request limits) with what
only producers need. Broker and result backend come from
:class:`worker.settings.QueueSettings`, as in every process.
"""

from __future__ import annotations

from pydantic import Field

from worker.settings import SharedSettings


class ProducerSettings(SharedSettings):
    """What a producer needs beyond the queue: how long callers may wait."""

    wait_max_seconds: float = Field(default=300.0, gt=0, le=3600)
