"""The configuration Celery loads for the eksops worker app: ``celeryconfig:CONFIG``.

Everything comes from the environment (``.env`` honoured), read when Celery first
needs it, not at import; what each setting is and why lives in
:mod:`worker.delivery.config`. Producers build the same configuration with
``role="producer"`` (``producer.queue``).
"""

from worker.delivery.config import FromEnvironment

CONFIG = FromEnvironment()
