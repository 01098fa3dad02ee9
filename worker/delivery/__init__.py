"""The delivery layer: how a request travels from a producer to a worker and back.

* :mod:`~worker.delivery.envelope` — the message format both sides use: producers build
  envelopes (``producer.enqueue``) and the worker's Lua claim and transport parse them;
* :mod:`~worker.delivery.inbox` and :mod:`~worker.delivery.transport` — kombu's Redis
  transport, hardened: a message leaves the queue without a window to lose it;
* :mod:`~worker.delivery.results` — an outcome stored as Celery's result backend would;
* :mod:`~worker.delivery.privates` — every private of kombu and Celery the layer relies
  on, checked by a test so an upgrade fails loudly in CI (kombu and Celery are pinned to
  a minor version in ``pyproject.toml``).

The only package of eksops that reaches into kombu's or Celery's internals; an
import-linter contract keeps producers to ``envelope`` and keeps the rest of the worker
away from ``inbox``.
"""
