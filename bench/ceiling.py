"""The raw Celery ceiling: how fast a worker drains no-op tasks on this machine.

``bench.noop_app`` runs one task that does nothing, with eksops's own Celery
settings, pool and concurrency. N messages (built the way eksops builds its own,
then LPUSHed in one pipeline) are drained; the rate is N over the time from the first
push to the last result stored and acked. No eksops worker can beat it: it is what
Celery's consume, execute, store-result and ack cycle costs here.

A closed loop of N callers (push one, wait for its result, repeat) gives the
round-trip floor of a task through Celery: what "submit -> result" costs when the
task itself costs nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis
from celery import Celery

from bench.e2e import ResultWatcher
from bench.loop import LoopResult, closed_loop
from bench.noop_app import TASK_NAME
from bench.workload import wait_drained
from producer.enqueue import Outgoing, build_message
from worker.contracts import QUEUE

_RESULT_TIMEOUT = 30.0


@dataclass
class CeilingResult:
    """No-op drain rate and closed-loop round trip."""

    tasks: int
    seconds: float
    loop: LoopResult

    @property
    def rate(self) -> float:
        """Return no-op tasks drained per second."""
        return self.tasks / self.seconds


def _message(app: Celery, request_id: str) -> bytes:
    return build_message(app, Outgoing(request_id, TASK_NAME, {}, summary=""))


def run_ceiling(
    app: Celery,
    client: redis.Redis,
    watcher: ResultWatcher,
    *,
    tasks: int,
    concurrency: int,
    duration: float,
    warmup: float,
) -> CeilingResult:
    """Drain ``tasks`` no-ops, then run a closed loop of ``concurrency`` no-op callers."""
    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    messages = [_message(app, request_id) for request_id in ids]
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for message in messages:
        pipe.lpush(QUEUE, message)
    pipe.execute()
    finished = wait_drained(client, ids, timeout=600)

    def request(_index: int) -> None:
        request_id = str(uuid.uuid4())
        stored = watcher.expect(request_id)
        client.lpush(QUEUE, _message(app, request_id))
        if not stored.wait(_RESULT_TIMEOUT):
            raise TimeoutError(f"no result for no-op {request_id}")

    loop = closed_loop(request, concurrency=concurrency, duration=duration, warmup=warmup)
    return CeilingResult(tasks=tasks, seconds=finished - started, loop=loop)
