"""The Celery app Flower runs with: ``celery -A producer.flower flower``.

Workers consume through eksops's own transport (``worker.delivery.transport``), whose
connection URI Flower cannot map to a broker client, so Flower's Broker page and
``/api/queues/length`` answered "'redis' broker is not supported" when Flower ran on
the worker's app. This app has the producers' configuration instead (kombu's own Redis
transport, the same broker, results and queue names), so Flower reads the ``eksops``
list like any Redis queue; events, workers and tasks come over the broker as before.
The bulk lanes (one list per batch) are in ``eksops queue``, ``/health`` and the
``eksops_queue_*`` metrics. Built at import, as ``celery -A`` needs.
"""

from __future__ import annotations

from producer.queue import make_app
from worker.settings import QueueSettings
from worker.validation import validate_settings

app = make_app(validate_settings(QueueSettings))
