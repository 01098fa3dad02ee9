"""eksops worker: Celery tasks running Kubernetes operations on EKS.

Importing ``worker`` (or ``worker.contracts``, as producers do) loads nothing heavy:
the Celery app is resolved lazily, when ``celery -A worker`` asks for ``worker.app``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in {"app", "celery"}:
        from worker.celery_app import app  # noqa: PLC0415 - lazy on purpose

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
