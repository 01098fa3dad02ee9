"""The Celery app Flower runs with: ``celery -A producer.flower flower``.

Workers consume through eksops's own transport (``worker.delivery.transport``), whose
connection URI Flower cannot map to a broker client, so Flower's Broker page and
``/api/queues/length`` answered "'redis' broker is not supported" when Flower ran on
the worker's app. This app has the producers' configuration instead (kombu's own Redis
transport, the same broker, results and queue names), so Flower reads the ``eksops``
list like any Redis queue; events, workers and tasks come over the broker as before.
The bulk lanes (one list per batch) are in ``eksops queue``, ``/health`` and the
``eksops_queue_*`` metrics. Built at import, as ``celery -A`` needs; a bad
configuration ends Flower with one line saying what to set.
"""

from __future__ import annotations

import sys

from celery import Celery

from producer.queue import make_app
from worker.errors import ConfigurationInvalid
from worker.settings import QueueSettings
from worker.validation import validate_settings


def flower_app() -> Celery:
    """Return the app Flower watches the queue with, from the environment."""
    queue = validate_settings(QueueSettings)
    queue.require_urls()
    return make_app(queue)


try:
    app = flower_app()
except ConfigurationInvalid as exc:
    sys.stderr.write(f"eksops flower: invalid configuration: {exc.message}\n")
    sys.stderr.flush()
    raise SystemExit(2) from None
