"""What Flower's view of chunk items costs: CPU per request of its task events.

The harness runs the worker's own observer (``worker.taskevents.TaskEvents``) against
the bench's Valkey, as a worker would for chunks of 16 create-jobs: each request's
``task-received``, ``task-started`` and ``task-succeeded``, published as the worker
publishes them (buffered, every 0.25 s and at each chunk's end). Measured: CPU per
request in this process (building and publishing the events) and in Valkey. A
subscriber in a process of its own (Celery's event receiver, as Flower's) counts what
arrives, so the figure is of events delivered.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery, states

from bench.procs import CpuMeter
from worker.catalog import spec_of
from worker.contracts import CHUNK_MAX_ITEMS, Operation
from worker.engine import Carrier, Request
from worker.taskevents import TaskEvents

_RESULT = {"job_name": "bench", "namespace": "default", "status": "created"}
_ARGUMENTS = {"job_manifest": {"metadata": {"name": "bench"}, "spec": {}}, "namespace": "default"}


@dataclass(frozen=True)
class EventsResult:
    """CPU per request of its task events, and what was delivered."""

    requests: int
    seconds: float
    cpu_us_per_request: dict[str, float]
    events_expected: int
    events_received: int


def _subscriber(app: Celery, received: Any, stop: Any) -> None:
    def on_event(event: dict[str, Any]) -> None:
        if str(event.get("type", "")).startswith("task-"):
            with received.get_lock():
                received.value += 1

    with app.connection() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": on_event})
        while not stop.is_set():
            try:
                receiver.capture(limit=None, timeout=0.2, wakeup=False)
            except TimeoutError:
                continue


def run_events(app: Celery, meter: CpuMeter, *, requests: int) -> EventsResult:
    """Send the events of ``requests`` chunk items; return their cost per request."""
    context = multiprocessing.get_context("fork")
    received, stop = context.Value("i", 0), context.Event()
    listener = context.Process(target=_subscriber, args=(app, received, stop), daemon=True)
    listener.start()
    time.sleep(1.0)  # subscribed before the first event
    events = TaskEvents(app, hostname=lambda: "bench@events")
    spec = spec_of(Operation.CREATE_JOB)

    def chunk() -> None:
        carrier = Carrier(str(uuid.uuid4()), chunk=True, bulk=True)
        items = [Request(str(uuid.uuid4()), _ARGUMENTS) for _ in range(CHUNK_MAX_ITEMS)]
        events.received(carrier, spec, items)
        for item in items:
            events.started(carrier, item.request_id, spec, 1)
            events.ended(carrier, item.request_id, spec, states.SUCCESS, _RESULT)
        events.finished(carrier, spec)

    chunk()  # the dispatcher's connection and first publish, outside the measurement
    chunks = max(1, requests // CHUNK_MAX_ITEMS)
    meter.start()
    started = time.perf_counter()
    for _ in range(chunks):
        chunk()
    seconds = time.perf_counter() - started
    use = meter.stop()
    deadline = time.monotonic() + 5
    expected = 3 * CHUNK_MAX_ITEMS * (chunks + 1)
    while received.value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    events.close()
    listener.join(2)
    if listener.is_alive():
        listener.terminate()
    done = chunks * CHUNK_MAX_ITEMS
    return EventsResult(
        requests=done,
        seconds=seconds,
        cpu_us_per_request={name: s * 1e6 / done for name, s in use.seconds.items()},
        events_expected=expected,
        events_received=int(received.value),
    )
