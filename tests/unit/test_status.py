"""Pollers see caller-level states; unknown IDs are told apart from queued ones."""

from __future__ import annotations

from datetime import UTC, datetime

import fakeredis
import pytest
import redis
from celery import Celery, states

from producer.status import combine, error_info, read_status
from worker import errors
from worker.contracts import RequestState
from worker.errors import NotFound, Unavailable
from worker.records import RequestRecord, lease_key, record_key

RID = "3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c"
RECORD = {"operation": "eksops.create_job", "submitted_at": "2026-01-20T10:30:00+00:00"}


def test_an_id_never_submitted_is_unknown() -> None:
    assert combine(RID, None, {"status": "PENDING"}).state is RequestState.UNKNOWN


def test_a_submitted_id_not_yet_picked_up_is_queued() -> None:
    status = combine(RID, RequestRecord.from_hash(RECORD), {"status": "PENDING"})
    assert status.state is RequestState.QUEUED
    assert status.submitted_at == RECORD["submitted_at"]
    assert status.operation == "eksops.create_job"


def test_a_started_request_reports_its_start_and_attempts() -> None:
    record = {
        **RECORD,
        "attempts": "1",
        "started_at": "2026-01-20T10:30:01+00:00",
        "last_started_at": "2026-01-20T10:30:01+00:00",
    }
    status = combine(RID, RequestRecord.from_hash(record), {"status": "PENDING"})
    assert (status.state, status.attempts, status.started_at) == (
        RequestState.STARTED,
        1,
        record["started_at"],
    )


def test_a_retried_request_running_again_reads_started_with_the_last_error() -> None:
    record = {
        **RECORD,
        "attempts": "2",
        "started_at": "2026-01-20T10:30:01+00:00",
        "last_retry_at": "2026-01-20T10:30:02+00:00",
        "last_started_at": "2026-01-20T10:30:05+00:00",
    }
    meta = {"status": "RETRY", "result": errors.Unavailable("boom", 503)}
    status = combine(RID, RequestRecord.from_hash(record), meta)
    assert status.state is RequestState.STARTED
    assert status.attempts == 2
    assert status.error is not None
    assert status.error.http_status == 503


def test_a_success_carries_the_result_and_finish_time() -> None:
    done = datetime(2026, 1, 20, 10, 30, 2, tzinfo=UTC)
    status = combine(
        RID,
        RequestRecord.from_hash(RECORD),
        {"status": "SUCCESS", "result": {"status": "created"}, "date_done": done},
    )
    assert status.state is RequestState.SUCCEEDED
    assert status.result == {"status": "created"}
    assert status.finished_at == done.isoformat()
    assert status.error is None


def test_a_failure_carries_the_structured_error() -> None:
    error = errors.NotFound('jobs.batch "x" not found', 404, "NotFound")
    status = combine(
        RID,
        RequestRecord.from_hash(RECORD),
        {"status": "FAILURE", "result": error, "date_done": "2026-01-20T10:30:02"},
    )
    assert status.state is RequestState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.http_status, status.error.message) == (
        "NotFound",
        404,
        'jobs.batch "x" not found',
    )


def test_a_request_waiting_to_retry_reads_retrying_with_the_error_of_the_last_attempt() -> None:
    record = {
        **RECORD,
        "last_started_at": "2026-01-20T10:30:01+00:00",
        "last_retry_at": "2026-01-20T10:30:02+00:00",
    }
    meta = {"status": "RETRY", "result": errors.Throttled("slow down", retry_after=2.0)}
    status = combine(RID, RequestRecord.from_hash(record), meta)
    assert status.state is RequestState.RETRYING
    assert status.error is not None
    assert status.error.retryable


def test_foreign_exceptions_still_give_a_structured_error() -> None:
    info = error_info(RuntimeError("Worker exited prematurely: signal 9 (SIGKILL)."))
    assert (info.code, info.http_status) == ("RuntimeError", 500)
    assert "SIGKILL" in info.message


def test_a_request_started_long_ago_without_an_outcome_reads_unknown_not_running() -> None:
    record = {
        **RECORD,
        "attempts": "1",
        "started_at": "2026-01-20T10:30:01+00:00",
        "last_started_at": "2026-01-20T10:30:01+00:00",
    }
    status = combine(RID, RequestRecord.from_hash(record), {"status": "PENDING"}, stale_after=1200)
    assert status.state is RequestState.UNKNOWN
    assert status.error is not None
    assert status.error.code == "OutcomeUnknown"
    assert "Check the cluster" in status.error.message


@pytest.mark.parametrize(("leased", "state"), [(True, "started"), (False, "unknown")])
def test_a_request_started_long_ago_is_running_while_a_worker_holds_its_lease(
    leased: bool, state: str
) -> None:
    # A long chunk takes all its requests at once and renews all their leases.
    app = Celery("t", set_as_current=False)
    app.conf.update(result_backend="redis://fake", result_serializer="json")
    backend = app.backend
    backend.client = client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    started = "2026-01-20T10:30:01+00:00"
    client.hset(
        record_key(RID),
        mapping={**RECORD, "attempts": "1", "started_at": started, "last_started_at": started},
    )
    if leased:
        client.set(lease_key(RID), "worker-1", px=30_000)
    status = read_status(redis=client, backend=backend, request_id=RID, stale_after=1200)
    assert status.state.value == state
    assert (status.error is None) is leased


def test_an_unreadable_status_is_an_error_not_an_empty_answer() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    with pytest.raises(Unavailable, match="Redis is unreachable"):
        read_status(redis=dead, backend=None, request_id=RID)


@pytest.mark.parametrize("stored", ["succeeded", "failed", "none"])
def test_one_round_trip_reads_what_two_do_when_results_share_the_broker(stored: str) -> None:
    app = Celery("t", set_as_current=False)
    app.conf.update(result_backend="redis://fake", result_serializer="json")
    backend = app.backend
    backend.client = client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    started = "2026-01-20T10:30:01+00:00"
    client.hset(record_key(RID), mapping={**RECORD, "attempts": "1", "started_at": started})
    if stored == "succeeded":
        backend.store_result(RID, {"job_name": "j"}, states.SUCCESS)
    elif stored == "failed":
        backend.store_result(RID, NotFound("Job j not found in namespace n"), states.FAILURE)
    two = read_status(redis=client, backend=backend, request_id=RID)
    one = read_status(redis=client, backend=backend, request_id=RID, shared=True)
    assert one == two
    assert one.state.value == {"succeeded": "succeeded", "failed": "failed"}.get(stored, "queued")
