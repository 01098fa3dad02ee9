"""Bulk accept: how fast ``EksOps.submit_many`` takes a burst, next to raw Redis.

The eksops figure is one ``submit_many`` call of N create-job items with
``durable=True``: every item validated (the worker's contracts, the Job schema),
recorded and enqueued, and the call returns only once Valkey confirms (``WAITAOF``)
that all of it is in its append-only file. No worker consumes that database, so
the rate is the accept path alone.

The ceiling is the same server taking the same burst as plain pipelined writes, one
message per item as Celery would publish it (each item's own task message, built
before the clock starts): LPUSH of each message in one pipeline (no validation, no
records, no scripts), with and without a ``WAITAOF`` at the end, and LPUSHes of 500
messages each. eksops itself sends a burst in chunks (many items per message), so
comparing with its own queue bytes would credit the raw side with its chunking.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from bench.procs import CpuMeter
from bench.workload import manifest
from producer import EksOps
from producer.enqueue import Outgoing, build_message
from worker.contracts import Operation
from worker.names import new_request_id


@dataclass
class AcceptResult:
    """Items per second on the accept path and on raw pipelined writes."""

    items: int
    accepted: int
    message_bytes: int
    seconds: float
    fsync_confirmed: bool
    raw_seconds: float
    raw_durable_seconds: float
    raw_variadic_seconds: float
    cpu_us_per_item: dict[str, float]

    @property
    def rate(self) -> float:
        """Return accepted items per second (validated, recorded, enqueued, fsynced)."""
        return self.accepted / self.seconds

    @property
    def raw_rate(self) -> float:
        """Return pipelined LPUSHes per second of the same bytes."""
        return self.items / self.raw_seconds

    @property
    def raw_durable_rate(self) -> float:
        """Return the pipelined LPUSH rate including a final ``WAITAOF``."""
        return self.items / self.raw_durable_seconds

    @property
    def raw_variadic_rate(self) -> float:
        """Return the rate of LPUSHes of 500 messages each (what the submit script does)."""
        return self.items / self.raw_variadic_seconds


def _waitaof(client: redis.Redis) -> bool:
    local, _replicas = client.execute_command("WAITAOF", 1, 0, 2000)  # type: ignore[no-untyped-call]
    return bool(local)


def run_accept(
    eksops: EksOps, client: redis.Redis, meter: CpuMeter, *, items: int, namespace: str
) -> AcceptResult:
    """Measure one durable ``submit_many`` of ``items`` create-jobs and the raw ceiling.

    ``meter`` (started by the caller, just before) tells how much CPU the producer
    and Valkey spent on the submit.
    """
    batch = [{"job_manifest": manifest(), "namespace": namespace} for _ in range(items)]
    meter.start()
    started = time.perf_counter()
    summary = eksops.submit_many(Operation.CREATE_JOB, batch, durable=True)
    seconds = time.perf_counter() - started
    use = meter.stop()
    fsynced = _waitaof(client)  # already written: answers at once, confirms AOF is on

    # Each item's own task message (what a per-message publish would write), pushed raw
    # onto a list nobody reads.
    messages = [
        build_message(eksops.app, Outgoing(new_request_id(), Operation.CREATE_JOB.task_name, item))
        for item in batch
    ]
    raw_seconds = _raw_push(client, messages, durable=False)
    raw_durable_seconds = _raw_push(client, messages, durable=True)
    raw_variadic_seconds = _raw_push(client, messages, durable=False, per_command=500)
    return AcceptResult(
        items=items,
        accepted=summary.accepted,
        message_bytes=sum(len(message) for message in messages) // max(len(messages), 1),
        seconds=seconds,
        fsync_confirmed=fsynced,
        raw_seconds=raw_seconds,
        raw_durable_seconds=raw_durable_seconds,
        raw_variadic_seconds=raw_variadic_seconds,
        cpu_us_per_item={name: value * 1000 for name, value in use.per_task_ms(items).items()},
    )


def _raw_push(
    client: redis.Redis, messages: list[Any], *, durable: bool, per_command: int = 1
) -> float:
    key = f"bench:raw:{uuid.uuid4().hex}"
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(messages), per_command):
        pipe.lpush(key, *messages[start : start + per_command])
    pipe.execute()
    if durable:
        _waitaof(client)
    seconds = time.perf_counter() - started
    client.delete(key)
    return seconds
