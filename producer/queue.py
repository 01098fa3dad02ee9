"""The producer's view of the queue: a Celery app that never runs tasks, and Redis.

Producers build task messages and read results with Celery's own machinery, and write
to the broker's Redis directly (see :mod:`producer.enqueue`). They never import the
worker's task code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.delivery.config import celery_settings, enable_signing
from worker.delivery.connections import redis_client
from worker.settings import QueueSettings


def make_app(queue: QueueSettings) -> Celery:
    """Return a Celery app configured like the workers, for messages and results."""
    app = Celery("eksops-producer", set_as_current=False)
    app.conf.update(celery_settings(queue, role="producer"))
    enable_signing(app, queue)
    return app


def make_redis(queue: QueueSettings, **options: Any) -> Any:
    """Return a client of the broker's Redis (where queue and request records live)."""
    return redis_client(str(queue.broker_url), queue, **options)
