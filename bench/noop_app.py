"""The raw Celery ceiling: one no-op task under eksops's own Celery settings.

``celery -A bench.noop_app worker`` runs it with the same configuration as the
eksops worker (``celeryconfig.celery_settings``: JSON, late acks, prefetch, events,
result backend, threads pool and concurrency from the environment), so the rate at
which it drains a queue of no-op messages is what Celery on this Redis can do at best;
the eksops worker cannot beat it.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.delivery.config import celery_settings
from worker.settings import QueueSettings

TASK_NAME = "bench.noop"

app = Celery("bench-noop", set_as_current=False)
app.conf.update(celery_settings(QueueSettings()))


@app.task(name=TASK_NAME)
def noop(**_: Any) -> None:
    """Do nothing; the result (None) is stored like any task's."""
