"""The engine's metrics observer: each request's start, retries and end as Prometheus series.

Told by the engine (``worker.engine.Observer``) whatever carried the request, so single
requests and chunk items are counted alike. Labels: ``operation``, ``lane``
(interactive | bulk, from the message's lane), ``outcome`` (succeeded | failed) and a
retry's error ``code``; the metrics themselves are declared in ``worker.metrics``.
Queued time runs from the message's enqueue (its ``eksops_enqueued_at`` property) to
the request's start: for a chunk item that includes waiting behind the chunk's earlier
items, which is how long it really waited.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from celery import states

from worker import metrics
from worker.catalog import Spec
from worker.engine import Carrier, Request
from worker.errors import EksOpsError


class Metering:
    """Counts and times every request a worker process runs."""

    def __init__(self) -> None:
        # request ID -> when its execution started (monotonic); popped at its end.
        self._started: dict[str, float] = {}

    def received(self, carrier: Carrier, spec: Spec, requests: Sequence[Request]) -> None:
        """Observe a chunk's size (a runner's single request is no chunk)."""
        if carrier.chunk:
            metrics.CHUNK_REQUESTS.labels(spec.operation.value).observe(len(requests))

    def started(self, carrier: Carrier, request_id: str, spec: Spec, attempt: int) -> None:
        """Count the start; observe how long the request waited for it."""
        operation, lane = spec.operation.value, metrics.lane(carrier.bulk)
        self._started[request_id] = time.monotonic()
        metrics.REQUESTS_STARTED.labels(operation, lane).inc()
        if carrier.enqueued_at is not None:
            waited = max(0.0, time.time() - carrier.enqueued_at)
            metrics.REQUEST_QUEUED.labels(operation, lane).observe(waited)

    def retrying(
        self, carrier: Carrier, request_id: str, spec: Spec, exc: EksOpsError, countdown: float
    ) -> None:
        """Count the retry by its error code."""
        metrics.REQUEST_RETRIES.labels(spec.operation.value, exc.code).inc()

    def ended(
        self, carrier: Carrier, request_id: str, spec: Spec, state: str, outcome: Any
    ) -> None:
        """Count the end by outcome; observe how long the request ran."""
        result = "succeeded" if state == states.SUCCESS else "failed"
        operation, lane = spec.operation.value, metrics.lane(carrier.bulk)
        metrics.REQUESTS_ENDED.labels(operation, lane, result).inc()
        started = self._started.pop(request_id, None)
        if started is not None:
            metrics.REQUEST_RUN.labels(operation, lane, result).observe(time.monotonic() - started)

    def finished(self, carrier: Carrier, spec: Spec) -> None:
        """Nothing to count: the chunk's requests were counted one by one."""
