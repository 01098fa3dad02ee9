"""Bulk submissions: what a caller gets back, and how a batch's progress is read.

A batch is a list of request IDs under a batch ID; every item stays a request of its
own (pollable by its ID). Items are validated one by one: a bad item is reported with
its index and the reason, the good ones are enqueued. A batch's status is computed
from its items' statuses when asked (one pipelined read of their records and results),
so there is one source of truth and workers do no extra work for batches. Items that
have ended are remembered with the batch by the first reader to see them, so following
a large batch reads only what is still running.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from producer.status import combine
from worker.contracts import RequestState, RequestStatus
from worker.errors import Conflict, ErrorInfo, QueueUnavailable
from worker.jobrecords import (
    ENDED,
    PHASES,
    batch_failed_jobs_key,
    batch_jobs_key,
    read_jobs,
)
from worker.records import Field as RecordField
from worker.records import RequestRecord, record_key

BATCH_KEY_PREFIX = "eksops:batch:"


def batch_key(batch_id: str) -> str:
    """Return the Redis key of a batch's summary (operation, created_at, counts)."""
    return BATCH_KEY_PREFIX + batch_id


def batch_items_key(batch_id: str) -> str:
    """Return the Redis key of a batch's request IDs, in submission order."""
    return BATCH_KEY_PREFIX + batch_id + ":items"


def batch_ended_key(batch_id: str) -> str:
    """Return the Redis key of a batch's items known to have ended, and how."""
    return BATCH_KEY_PREFIX + batch_id + ":ended"


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


class FailedJob(BaseModel):
    """A Job of the batch that failed, and why (as the job tracker recorded it)."""

    job_name: str
    namespace: str
    request_id: str | None
    reason: str | None
    message: str | None
    exit_code: int | None = None
    pod_reason: str | None = None
    last_log_line: str | None = None


class BatchStatus(BaseModel):
    """Where a batch is: its requests by state, its Jobs by phase, what failed.

    ``failed`` lists at most the number asked for (100 by default), in submission
    order; ``counts["failed"]`` is the total. ``jobs`` counts the Jobs the batch's
    requests made, by phase, as the job tracker records them; ``failed_jobs`` lists the
    first that failed, with reason, exit code and message; ``jobs_done`` says every Job
    made has ended.
    """

    batch_id: str
    operation: str | None = None
    created_at: str | None = None
    total: int
    rejected: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    done: bool
    failed: list[FailedItem] = Field(default_factory=list)
    jobs: dict[str, int] = Field(default_factory=dict)
    jobs_done: bool = False
    failed_jobs: list[FailedJob] = Field(default_factory=list)
    callback_url: str | None = None
    cancelled_at: str | None = None  # when a cancel of the batch was asked
    retry_of: str | None = None  # the batch whose failed items this one retries
    retries: list[str] = Field(default_factory=list)  # batches retrying this one's failures
    tenant: str | None = None  # the tenant that submitted it (none: a trusted producer)


class BatchInterrupted(QueueUnavailable):
    """Raised when Redis failed part-way through a bulk submit.

    ``submission`` says which items were enqueued (they run) and which were not
    (their ``error`` says so); resubmitting the items with the request IDs they were
    given enqueues only the missing ones.
    """

    def __init__(self, message: str, submission: BatchSubmission | None = None) -> None:
        super().__init__(message, code="BatchInterrupted")
        self.submission = submission


def open_batch(
    redis: Any,
    batch_id: str,
    *,
    operation: str,
    created_at: str,
    ttl: int,
    callback: str | None = None,
    tenant: str | None = None,
) -> None:
    """Store the batch summary before its items (a batch may grow over several submits).

    ``callback`` is where the ends of the batch's requests and Jobs are POSTed; the
    latest submit that names one sets it for the whole batch. ``tenant``: who submits
    it; a batch ID already used by another tenant (or by none) raises Conflict.
    """
    key = batch_key(batch_id)
    pipe = redis.pipeline(transaction=False)
    pipe.hsetnx(key, "created_at", created_at)
    pipe.hsetnx(key, "operation", operation)
    pipe.hsetnx(key, "tenant", tenant or "")
    pipe.hget(key, "tenant")
    if callback:
        pipe.hset(key, "callback", callback)
    pipe.expire(key, ttl)
    owner = pipe.execute()[3]
    owner = owner.decode() if isinstance(owner, bytes) else owner
    if (owner or "") != (tenant or ""):
        raise Conflict(f"Batch ID {batch_id} is in use; submit with another batch_id")


def batch_owner(redis: Any, batch_id: str) -> tuple[bool, str | None]:
    """Return whether a batch exists, and the tenant that submitted it (None: no tenant)."""
    created, tenant = redis.hmget(batch_key(batch_id), "created_at", "tenant")
    return created is not None, (_text(tenant) or None) if tenant else None


def count_rejected(redis: Any, batch_id: str, rejected: int) -> None:
    """Add the items refused at submission to the batch summary."""
    if rejected:
        redis.hincrby(batch_key(batch_id), "rejected", rejected)


#: How many failed items a batch status lists unless asked for more (``counts`` has all).
FAILED_SHOWN = 100
#: States that never change again, so a batch remembers them instead of re-reading them.
_FINAL = frozenset(
    {RequestState.SUCCEEDED.value, RequestState.FAILED.value, RequestState.CANCELLED.value}
)


def read_metas(backend: Any, request_ids: list[str]) -> list[dict[str, Any]]:
    """Return the Celery result meta of each request (one pipelined read on Redis)."""
    client: Any = getattr(backend, "client", None)
    key_for = getattr(backend, "get_key_for_task", None)
    if key_for is None or not hasattr(client, "pipeline"):  # a non-Redis result backend
        return [backend.get_task_meta(rid) for rid in request_ids]
    pipe = client.pipeline(transaction=False)
    for rid in request_ids:
        pipe.get(key_for(rid))
    raw = pipe.execute()
    return [backend.decode_result(value) if value else {"status": "PENDING"} for value in raw]


def _statuses(redis: Any, backend: Any, request_ids: list[str]) -> dict[str, RequestStatus]:
    """Each request's status, from one pipelined read of records and one of results."""
    if not request_ids:
        return {}
    pipe = redis.pipeline(transaction=False)
    for rid in request_ids:
        pipe.hgetall(record_key(rid))
    records = [RequestRecord.from_hash(raw) for raw in pipe.execute()]
    metas = read_metas(backend, request_ids)
    return {
        rid: combine(rid, record, meta)
        for rid, record, meta in zip(request_ids, records, metas, strict=True)
    }


def read_batch(
    *, redis: Any, backend: Any, batch_id: str, failed_limit: int = FAILED_SHOWN
) -> BatchStatus | None:
    """Return the status of ``batch_id``, or ``None`` if no such batch exists.

    Items that have ended (succeeded or failed, which never change again) are
    remembered in the batch's ``:ended`` hash by whoever reads them first, so a poll
    reads only the items still running, plus the errors of the first ``failed_limit``
    failed items it lists: a large batch costs little to follow to its end.
    """
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(batch_key(batch_id))
    pipe.pttl(batch_key(batch_id))
    pipe.lrange(batch_items_key(batch_id), 0, -1)
    pipe.hgetall(batch_ended_key(batch_id))
    pipe.hgetall(batch_jobs_key(batch_id))
    pipe.lrange(batch_failed_jobs_key(batch_id), 0, max(failed_limit, 0) - 1)
    summary_raw, ttl_ms, items_raw, ended_raw, jobs_raw, failed_jobs_raw = pipe.execute()
    summary = {_text(k): _text(v) for k, v in summary_raw.items()}
    if not summary:
        return None
    request_ids = [_text(rid) for rid in items_raw]
    states = {_text(rid): _text(state) for rid, state in ended_raw.items()}
    running = _statuses(redis, backend, [rid for rid in request_ids if rid not in states])
    _remember_ended(redis, batch_id, running.values(), ttl_ms)
    states.update((rid, status.state.value) for rid, status in running.items())
    failed_ids = [rid for rid in request_ids if states[rid] == RequestState.FAILED.value]
    shown = failed_ids[: max(failed_limit, 0)]
    failed = {rid: running[rid] for rid in shown if rid in running}
    failed.update(_statuses(redis, backend, [rid for rid in shown if rid not in failed]))
    counts = Counter(states[rid] for rid in request_ids)
    raw_jobs = {_text(phase): int(count) for phase, count in jobs_raw.items()}
    jobs: dict[str, int] = {phase: max(0, raw_jobs.get(phase, 0)) for phase in PHASES}
    creates = summary.get("operation") == "create_job"
    made = counts.get(RequestState.SUCCEEDED.value, 0) if creates else 0
    return BatchStatus(
        batch_id=batch_id,
        operation=summary.get("operation"),
        created_at=summary.get("created_at"),
        total=len(request_ids),
        rejected=int(summary.get("rejected") or 0),
        # Every state, unknown included (an item whose record expired before the batch):
        # the counts always add up to the total.
        counts={state.value: counts.get(state.value, 0) for state in RequestState},
        done=all(RequestState(states[rid]).is_terminal for rid in request_ids),
        failed=[FailedItem(request_id=rid, error=failed[rid].error) for rid in shown],
        jobs=jobs,
        jobs_done=sum(jobs[phase] for phase in ENDED) >= made,
        failed_jobs=_failed_jobs(redis, [_text(key) for key in failed_jobs_raw]),
        callback_url=summary.get("callback"),
        cancelled_at=summary.get("cancelled_at"),
        retry_of=summary.get("retry_of"),
        retries=[rid for rid in (summary.get("retries") or "").split(",") if rid],
        tenant=summary.get("tenant") or None,
    )


def _failed_jobs(redis: Any, keys: list[str]) -> list[FailedJob]:
    failed = []
    for record in read_jobs(redis, keys):
        if record is None:
            continue
        pod: dict[str, Any] = next(iter(record.summary()["failed_pods"]), {})
        lines = (record.log or {}).get("lines") or []
        failed.append(
            FailedJob(
                job_name=record.name,
                namespace=record.namespace,
                request_id=record.request_id,
                reason=record.job.get("reason"),
                message=record.job.get("message"),
                exit_code=pod.get("exit_code"),
                pod_reason=pod.get("reason"),
                last_log_line=lines[-1] if lines else None,
            )
        )
    return failed


def _remember_ended(
    redis: Any, batch_id: str, statuses: Iterable[RequestStatus], ttl_ms: int
) -> None:
    ended = {
        status.request_id: status.state.value for status in statuses if status.state.value in _FINAL
    }
    if not ended or ttl_ms <= 0:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.hset(batch_ended_key(batch_id), mapping=ended)
    pipe.pexpire(batch_ended_key(batch_id), ttl_ms)  # it lives as long as its batch
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def batch_request_ids(redis: Any, batch_id: str) -> list[str] | None:
    """Return a batch's request IDs in submission order; ``None`` if there is no batch."""
    pipe = redis.pipeline(transaction=False)
    pipe.exists(batch_key(batch_id))
    pipe.lrange(batch_items_key(batch_id), 0, -1)
    exists, items = pipe.execute()
    return [_text(rid) for rid in items] if exists else None


def mark_cancelled(redis: Any, batch_id: str, at: str) -> None:
    """Note when the batch's cancel was asked (the first time)."""
    redis.hsetnx(batch_key(batch_id), "cancelled_at", at)


def link_retry(redis: Any, batch_id: str, retry_id: str) -> None:
    """Link a batch retrying ``batch_id``'s failed items to it, both ways."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(batch_key(retry_id), "retry_of", batch_id)
    pipe.hget(batch_key(batch_id), "retries")
    _, earlier = pipe.execute()
    retries = [rid for rid in (_text(earlier) if earlier else "").split(",") if rid]
    redis.hset(batch_key(batch_id), "retries", ",".join([*retries, retry_id]))


def failed_arguments(
    redis: Any, backend: Any, batch_id: str
) -> tuple[list[dict[str, Any]], int] | None:
    """Return the arguments of a batch's failed items, and how many failed without them.

    A failed request keeps its arguments in its record (the worker writes them with the
    failure); one that failed before a worker could read it (malformed) has none.
    ``None`` if there is no batch.
    """
    request_ids = batch_request_ids(redis, batch_id)
    if request_ids is None:
        return None
    found: list[dict[str, Any]] = []
    missing = 0
    for start in range(0, len(request_ids), 1000):
        part = request_ids[start : start + 1000]
        failed = [
            rid
            for rid, status in _statuses(redis, backend, part).items()
            if status.state is RequestState.FAILED
        ]
        pipe = redis.pipeline(transaction=False)
        for rid in failed:
            pipe.hget(record_key(rid), RecordField.ARGUMENTS)
        for arguments in pipe.execute():
            if arguments:
                found.append(json.loads(arguments))
            else:
                missing += 1
    return found, missing
