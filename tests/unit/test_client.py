"""The producer library validates before writing and is idempotent per request ID."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from celery import Celery

import producer.client
from producer import EksOps
from producer.batches import batch_ended_key, batch_key
from producer.settings import ProducerSettings
from worker import errors
from worker.contracts import Operation, RequestState
from worker.delivery import lanes
from worker.delivery.config import celery_settings
from worker.delivery.results import set_result_meta
from worker.errors import InvalidRequest
from worker.records import record_key
from worker.settings import ConfigurationInvalid, QueueSettings

JOB: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}
        }
    }
}


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def client(redis: fakeredis.FakeRedis) -> EksOps:
    queue = QueueSettings(redis_url="redis://unused:6379/0")
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_settings(queue))
    app.conf.result_backend = "cache+memory://"
    return EksOps(settings=ProducerSettings(), queue=queue, app=app, redis=redis)


def test_a_valid_request_is_enqueued_with_a_new_uuid(
    client: EksOps, redis: fakeredis.FakeRedis
) -> None:
    submission = client.create_job(JOB, "team-a")
    assert uuid.UUID(submission.request_id)
    assert submission.operation is Operation.CREATE_JOB
    assert not submission.duplicate
    assert lanes.waiting(redis).total == 1
    assert client.status(submission.request_id).state is RequestState.QUEUED


@pytest.mark.parametrize(
    ("submit", "problem"),
    [
        (lambda c: c.create_job({"spec": {"template": {}}}), "job_manifest.spec.template.spec"),
        (lambda c: c.create_job(JOB, "Team_A"), "namespace 'Team_A' is not a valid name"),
        (lambda c: c.get_job_status("x" * 64), "the limit is 63"),
        (lambda c: c.delete_namespace("kube-system"), "is protected"),
        (lambda c: c.create_namespace(""), "must not be empty"),
        (
            lambda c: c.submit(Operation.DELETE_JOB, {"job_name": "a", "force": True}),
            "force: unknown field",
        ),
        (lambda c: c.create_namespace("ok", request_id="not-a-uuid"), "is not a UUID"),
    ],
)
def test_invalid_input_is_refused_and_nothing_is_written(
    client: EksOps, redis: fakeredis.FakeRedis, submit: Any, problem: str
) -> None:
    with pytest.raises(InvalidRequest, match=problem.replace("(", r"\(").replace(")", r"\)")):
        submit(client)
    assert redis.dbsize() == 0


def test_a_caller_supplied_request_id_is_submitted_once(
    client: EksOps, redis: fakeredis.FakeRedis
) -> None:
    rid = str(uuid.uuid4())
    first = client.create_namespace("team-a", request_id=rid)
    second = client.create_namespace("team-a", request_id=rid.upper())
    assert first.request_id == second.request_id == rid
    assert (first.duplicate, second.duplicate) == (False, True)
    assert lanes.waiting(redis).total == 1


def test_an_unknown_request_id_reads_as_unknown(client: EksOps) -> None:
    assert client.status(str(uuid.uuid4())).state is RequestState.UNKNOWN


def test_waiting_on_a_queued_request_returns_when_the_timeout_runs_out(client: EksOps) -> None:
    submission = client.create_namespace("team-a")
    assert client.wait(submission.request_id, timeout=0.05).state is RequestState.QUEUED
    with pytest.raises(TimeoutError, match="still queued"):
        client.result(submission.request_id, timeout=0.05)


def test_a_client_without_redis_configured_says_what_to_set() -> None:
    with pytest.raises(ConfigurationInvalid, match="set REDIS_URL"):
        EksOps(queue=QueueSettings())


def test_a_manifest_above_the_configured_limit_is_refused(redis: fakeredis.FakeRedis) -> None:
    queue = QueueSettings(redis_url="redis://unused:6379/0")
    client = EksOps(settings=ProducerSettings(max_manifest_bytes=1024), queue=queue, redis=redis)
    big = {**JOB, "metadata": {"annotations": {"blob": "x" * 2000}}}
    with pytest.raises(InvalidRequest, match="the limit is 1024 bytes"):
        client.create_job(big)
    assert redis.dbsize() == 0


def test_a_bulk_submit_enqueues_good_items_and_reports_bad_ones(
    client: EksOps, redis: fakeredis.FakeRedis
) -> None:
    items = [
        {"job_manifest": JOB, "namespace": "team-a"},
        {"job_manifest": {"spec": {}}, "namespace": "team-a"},
        {"job_manifest": JOB, "namespace": "Team_B"},
        {"job_manifest": JOB},
        ["not", "an", "object"],
    ]
    batch = client.submit_many(Operation.CREATE_JOB, items)  # type: ignore[arg-type]
    assert (batch.accepted, batch.duplicates, batch.rejected) == (2, 0, 3)
    assert [item.index for item in batch.items] == [0, 1, 2, 3, 4]
    assert batch.items[4].error == (
        "Invalid request: an item must be an object of arguments, not list"
    )
    assert batch.items[1].error is not None
    assert 'job_manifest.spec: "template" is a required property' in batch.items[1].error
    assert batch.items[2].error is not None
    assert "Team_B" in batch.items[2].error
    assert lanes.waiting(redis).total == 2
    status = client.batch(batch.batch_id)
    assert status is not None
    assert (status.total, status.rejected, status.counts["queued"], status.done) == (2, 3, 2, False)
    for item in batch.items:
        if item.request_id:
            assert client.status(item.request_id).state is RequestState.QUEUED
    redis.delete(record_key(batch.items[0].request_id or ""))  # expired before the batch
    status = client.batch(batch.batch_id)
    assert status is not None
    assert (status.counts["queued"], status.counts["unknown"]) == (1, 1)
    assert sum(status.counts.values()) == status.total


def test_items_may_carry_their_own_request_ids_and_resubmitting_a_batch_is_harmless(
    client: EksOps, redis: fakeredis.FakeRedis
) -> None:
    rids = [str(uuid.uuid4()) for _ in range(3)]
    items = [{"namespace_name": f"ns-{i}", "request_id": rid} for i, rid in enumerate(rids)]
    first = client.submit_many(Operation.CREATE_NAMESPACE, items)
    again = client.submit_many(Operation.CREATE_NAMESPACE, items, batch_id=first.batch_id)
    assert [item.request_id for item in first.items] == rids
    assert (again.accepted, again.duplicates) == (0, 3)
    assert lanes.waiting(redis).total == 3
    status = client.batch(first.batch_id)
    assert status is not None
    assert status.total == 3


def test_an_unknown_batch_reads_as_none(client: EksOps) -> None:
    assert client.batch(str(uuid.uuid4())) is None


def test_a_batch_remembers_ended_items_and_lists_its_first_failures(
    client: EksOps, redis: fakeredis.FakeRedis
) -> None:
    items = [{"namespace_name": f"ns-{i}"} for i in range(5)]
    batch = client.submit_many(Operation.CREATE_NAMESPACE, items)
    rids = [item.request_id or "" for item in batch.items]
    backend = client.app.backend
    for rid in rids[:2]:
        backend.store_result(rid, {"status": "created"}, "SUCCESS")
    for rid in rids[2:4]:
        backend.mark_as_failure(rid, errors.Conflict(f"{rid} exists", 409, "AlreadyExists"))
    status = client.batch(batch.batch_id, failed_limit=1)
    assert status is not None
    assert (status.counts["succeeded"], status.counts["failed"], status.counts["queued"]) == (
        2,
        2,
        1,
    )
    assert [item.request_id for item in status.failed] == [rids[2]]  # first submitted first
    assert status.failed[0].error is not None
    assert status.failed[0].error.code == "AlreadyExists"
    assert redis.hlen(batch_ended_key(batch.batch_id)) == 4
    ended_ttl, batch_ttl = (
        redis.pttl(batch_ended_key(batch.batch_id)),
        redis.pttl(batch_key(batch.batch_id)),
    )
    assert abs(ended_ttl - batch_ttl) < 60_000  # it lives as long as its batch
    # Ended items are not read again: their records and results may even be gone.
    for rid in rids[:2]:
        redis.delete(record_key(rid))
        backend.forget(rid)
    again = client.batch(batch.batch_id, failed_limit=0)
    assert again is not None
    assert again.counts == status.counts
    assert again.failed == []
    assert not again.done


@pytest.fixture
def sharing(redis: fakeredis.FakeRedis) -> Iterator[EksOps]:
    """A client whose results live in the broker's Redis (the default deployment)."""
    queue = QueueSettings(redis_url="redis://unused:6379/0")
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_settings(queue), worker_send_task_events=False)
    backend = app.backend
    backend.client = redis
    app._get_backend = lambda: backend  # type: ignore[method-assign]  # every thread's
    client = EksOps(settings=ProducerSettings(), queue=queue, app=app, redis=redis)
    assert client.results_share_redis
    yield client
    client.close()


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_a_result_is_taken_from_the_published_outcome_without_a_read_after_it(
    sharing: EksOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = sharing.create_namespace("team-a").request_id
    reads: list[float] = []
    real = producer.client.read_parts

    def counted(**kwargs: Any) -> Any:
        reads.append(time.monotonic())
        return real(**kwargs)

    monkeypatch.setattr(producer.client, "read_parts", counted)
    backend = sharing.app.backend
    stored: list[float] = []

    def succeed() -> None:
        stored.append(time.monotonic())
        set_result_meta(backend, rid, {"namespace": "team-a"}, "SUCCESS")

    retry = later(0.1, lambda: backend.mark_as_retry(rid, errors.TransientError("busy")))
    done = later(0.3, succeed)
    started = time.monotonic()
    assert sharing.result(rid, timeout=10) == {"namespace": "team-a"}
    assert time.monotonic() - started < 0.9  # woken, not the one-second re-read
    retry.join()
    done.join()
    # Read first and again after the RETRY (not an outcome); nothing after the SUCCESS.
    assert len(reads) >= 2
    assert max(reads) < stored[0]


def test_the_result_of_a_request_cancelled_meanwhile_is_the_cancellation(
    sharing: EksOps,
) -> None:
    rid = sharing.create_namespace("team-a").request_id
    cancel = later(0.1, lambda: sharing.cancel(rid))
    with pytest.raises(errors.Cancelled, match=f"Request {rid} was cancelled"):
        sharing.result(rid, timeout=10)
    cancel.join()
