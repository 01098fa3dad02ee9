"""Bulk submissions: what a caller gets back, and how a batch's progress is read.

A batch is a list of request IDs under a batch ID; every item stays a request of its
own (pollable by its ID). Items are validated one by one: a bad item is reported with
its index and the reason, the good ones are enqueued. A batch's status is computed
from its items' statuses when asked (one pipelined read of their records and results),
so there is one source of truth and workers do no extra work for batches.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from producer.status import combine
from worker.contracts import ErrorInfo, RequestState
from worker.errors import Unavailable
from worker.records import batch_items_key, batch_key, record_key


class BatchItem(BaseModel):
    """The outcome of submitting one item: its request ID, or why it was refused."""

    index: int
    request_id: str | None = None
    duplicate: bool = False
    error: str | None = None


class BatchSubmission(BaseModel):
    """What a bulk submit returns: one entry per input item, in input order."""

    batch_id: str
    operation: str
    accepted: int
    duplicates: int
    rejected: int
    items: list[BatchItem]


class FailedItem(BaseModel):
    """A batch item that failed, with its error."""

    request_id: str
    error: ErrorInfo | None


class BatchStatus(BaseModel):
    """Where a batch is: counts by state, and the items that failed."""

    batch_id: str
    operation: str | None = None
    created_at: str | None = None
    total: int
    rejected: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    done: bool
    failed: list[FailedItem] = Field(default_factory=list)


class BatchInterrupted(Unavailable):
    """Raised when Redis failed part-way through a bulk submit.

    ``submission`` says which items were enqueued (they run) and which were not
    (their ``error`` says so); resubmitting the items with the request IDs they were
    given enqueues only the missing ones.
    """

    def __init__(self, message: str, submission: BatchSubmission | None = None) -> None:
        super().__init__(message)
        self.submission = submission


def open_batch(redis: Any, batch_id: str, *, operation: str, created_at: str, ttl: int) -> None:
    """Store the batch summary before its items (a batch may grow over several submits)."""
    key = batch_key(batch_id)
    pipe = redis.pipeline(transaction=False)
    pipe.hsetnx(key, "created_at", created_at)
    pipe.hsetnx(key, "operation", operation)
    pipe.expire(key, ttl)
    pipe.execute()


def count_rejected(redis: Any, batch_id: str, rejected: int) -> None:
    """Add the items refused at submission to the batch summary."""
    if rejected:
        redis.hincrby(batch_key(batch_id), "rejected", rejected)


def _metas(backend: Any, request_ids: list[str]) -> list[dict[str, Any]]:
    client: Any = getattr(backend, "client", None)
    key_for = getattr(backend, "get_key_for_task", None)
    if key_for is None or not hasattr(client, "pipeline"):  # a non-Redis result backend
        return [backend.get_task_meta(rid) for rid in request_ids]
    pipe = client.pipeline(transaction=False)
    for rid in request_ids:
        pipe.get(key_for(rid))
    raw = pipe.execute()
    return [backend.decode_result(value) if value else {"status": "PENDING"} for value in raw]


def read_batch(*, redis: Any, backend: Any, batch_id: str) -> BatchStatus | None:
    """Return the status of ``batch_id``, or ``None`` if no such batch exists."""
    summary = {_text(k): _text(v) for k, v in redis.hgetall(batch_key(batch_id)).items()}
    if not summary:
        return None
    request_ids = [_text(rid) for rid in redis.lrange(batch_items_key(batch_id), 0, -1)]
    pipe = redis.pipeline(transaction=False)
    for rid in request_ids:
        pipe.hgetall(record_key(rid))
    records = [{_text(k): _text(v) for k, v in raw.items()} for raw in pipe.execute()]
    statuses = [
        combine(rid, record, meta)
        for rid, record, meta in zip(
            request_ids, records, _metas(backend, request_ids), strict=True
        )
    ]
    counts = Counter(status.state.value for status in statuses)
    return BatchStatus(
        batch_id=batch_id,
        operation=summary.get("operation"),
        created_at=summary.get("created_at"),
        total=len(statuses),
        rejected=int(summary.get("rejected") or 0),
        # Every state, unknown included (an item whose record expired before the batch):
        # the counts always add up to the total.
        counts={state.value: counts.get(state.value, 0) for state in RequestState},
        done=all(status.state.is_terminal for status in statuses),
        failed=[
            FailedItem(request_id=status.request_id, error=status.error)
            for status in statuses
            if status.state is RequestState.FAILED
        ],
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
