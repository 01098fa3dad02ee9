"""End to end through eksops: submit, the worker runs it, the result is readable.

N caller threads each submit a create-job with :meth:`producer.EksOps.create_job`,
wait until :meth:`producer.EksOps.status` reports it succeeded, and submit the next,
so N requests are in flight, as in the direct baseline. A worker with concurrency N
serves them.

To know when to read the status without polling in a loop (which would add its own
sleep to every latency), :class:`ResultWatcher` listens on the channel Celery's
Redis backend publishes each stored result to; the caller then reads the status
once. The latency of a request is from the start of the submit call to the return
of the ``status()`` call that says ``succeeded``.

:func:`run_drain` measures the worker's throughput alone: a queue of create-jobs
submitted at once, drained by the worker's N threads.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import redis

from bench.loop import LoopResult, closed_loop, percentile
from bench.workload import RESULT_PREFIX, manifest, wait_drained
from producer import EksOps
from worker.contracts import Operation, RequestState

_RESULT_TIMEOUT = 60.0


class ResultWatcher:
    """Wakes the caller waiting for a request when its result is published."""

    def __init__(self, client: redis.Redis) -> None:
        # The client must outlive the subscription: collecting it closes its pool.
        self._client = client
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(RESULT_PREFIX + "*")
        self._waiting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-results", daemon=True)
        self._thread.start()

    def expect(self, request_id: str) -> threading.Event:
        """Return the event set when ``request_id``'s result is stored (call before submit)."""
        event = threading.Event()
        with self._lock:
            self._waiting[request_id] = event
        return event

    def _run(self) -> None:
        prefix = len(RESULT_PREFIX)
        while not self._stopped.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            request_id = message["channel"][prefix:].decode()
            with self._lock:
                event = self._waiting.pop(request_id, None)
            if event is not None:
                event.set()

    def close(self) -> None:
        """Stop listening."""
        self._stopped.set()
        self._thread.join(timeout=5)
        self._pubsub.close()


@dataclass
class Stages:
    """Where each request's time went, from the timestamps eksops records.

    ``submit``: the ``create_job`` call; ``queued``: submitted -> a worker started it;
    ``run``: started -> result stored (the API call plus the worker's own work);
    ``notify``: result stored -> ``status()`` returned ``succeeded`` to the caller.
    """

    samples: dict[str, list[float]] = field(
        default_factory=lambda: {"submit": [], "queued": [], "run": [], "notify": []}
    )
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **milliseconds: float) -> None:
        """Record one request's stages."""
        with self.lock:
            for name, value in milliseconds.items():
                self.samples[name].append(value)

    def p(self, fraction: float) -> dict[str, float]:
        """Return a percentile of each stage, in milliseconds."""
        return {name: percentile(values, fraction) for name, values in self.samples.items()}


def _epoch(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


def run_e2e(
    eksops: EksOps,
    watcher: ResultWatcher,
    *,
    namespace: str,
    concurrency: int,
    duration: float,
    warmup: float,
    stages: Stages | None = None,
) -> LoopResult:
    """Measure submit -> result readable from ``concurrency`` closed-loop callers."""

    def request(_index: int) -> None:
        request_id = str(uuid.uuid4())
        stored = watcher.expect(request_id)
        began = time.time()
        eksops.create_job(manifest(), namespace=namespace, request_id=request_id)
        submitted = time.time()
        if not stored.wait(_RESULT_TIMEOUT):
            raise TimeoutError(f"no result for {request_id} after {_RESULT_TIMEOUT:.0f}s")
        status = eksops.status(request_id)
        ended = time.time()
        if status.state is not RequestState.SUCCEEDED:
            raise RuntimeError(f"request {request_id} is {status.state.value}: {status.error}")
        if stages is not None:
            started, finished = _epoch(status.started_at), _epoch(status.finished_at)
            stages.add(
                submit=(submitted - began) * 1000,
                queued=(started - _epoch(status.submitted_at)) * 1000,
                run=(finished - started) * 1000,
                notify=(ended - finished) * 1000,
            )

    return closed_loop(request, concurrency=concurrency, duration=duration, warmup=warmup)


@dataclass
class DrainResult:
    """A queue of create-jobs drained by the worker: how many, how long."""

    tasks: int
    seconds: float

    @property
    def rate(self) -> float:
        """Return tasks completed per second, from the submit to the last result."""
        return self.tasks / self.seconds


def run_drain(
    eksops: EksOps, client: redis.Redis, *, namespace: str, tasks: int, timeout: float = 900
) -> DrainResult:
    """Submit ``tasks`` create-jobs at once and time until the worker has run them all."""
    items = [{"job_manifest": manifest(), "namespace": namespace} for _ in range(tasks)]
    started = time.perf_counter()
    summary = eksops.submit_many(Operation.CREATE_JOB, items, durable=False)
    ids = [item.request_id for item in summary.items if item.request_id]
    finished = wait_drained(client, ids, timeout=timeout)
    return DrainResult(tasks=len(ids), seconds=finished - started)
