"""Webhooks: each terminal transition POSTed, signed, retried, at least once, never slowing.

The session's worker signs with ``CALLBACK_KEY``, tries a delivery 3 times with 0.5 s
backoff and waits 1 s for an answer (see the conftest); the receiver is a real HTTP
server on 127.0.0.1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from producer import EksOps
from tests.integration.conftest import CALLBACK_KEY, job_manifest
from tests.support.receiver import Behaviour, Received, Receiver
from tests.support.waiting import wait_until
from worker import callbacks
from worker.contracts import Operation
from worker.errors import InvalidRequest

pytestmark = pytest.mark.integration

OUTCOME = "kubesim.eksops.io/outcome"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def _path() -> str:
    return f"/hook/{uuid.uuid4().hex[:8]}"


def _signed(post: Received) -> bool:
    signature = post.headers[callbacks.SIGNATURE_HEADER]
    return callbacks.verify(CALLBACK_KEY.encode(), signature, post.body)


def test_a_create_job_posts_its_request_end_and_its_job_end_signed(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    path = _path()
    submission = eksops.create_job(
        job_manifest("hooked"), namespace, callback_url=receiver.url(path)
    )
    wait_until(lambda: len(receiver.delivered(path)) == 2, timeout=60)
    by_kind = {post.payload["kind"]: post for post in receiver.delivered(path)}
    request, job = by_kind["request"].payload, by_kind["job"].payload
    assert request["request_id"] == submission.request_id
    assert request["state"] == "succeeded"
    assert request["result"]["job_name"] == "hooked"
    assert job["request_id"] == submission.request_id
    assert (job["job"]["job_name"], job["job"]["phase"]) == ("hooked", "succeeded")
    for post in by_kind.values():
        assert _signed(post)
        assert post.headers["Content-Type"] == "application/json"
        assert post.headers[callbacks.DELIVERY_HEADER] == post.payload["delivery"]
    wait_until(
        lambda: (
            {k: d.state for k, d in eksops.status(submission.request_id).callbacks.items()}
            == {"request": "delivered", "job": "delivered"}
        )
    )
    status = eksops.status(submission.request_id)
    assert status.callback_url == receiver.url(path)
    assert status.callbacks["request"].attempts == 1


def test_a_failed_job_posts_its_reason_and_exit_code(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    path = _path()
    manifest = job_manifest("hooked-fail", **{OUTCOME: "fail", "kubesim.eksops.io/exit-code": "7"})
    eksops.create_job(manifest, namespace, callback_url=receiver.url(path))
    wait_until(
        lambda: any(p.payload["kind"] == "job" for p in receiver.delivered(path)), timeout=60
    )
    (job,) = [p.payload["job"] for p in receiver.delivered(path) if p.payload["kind"] == "job"]
    assert job["phase"] == "failed"
    assert job["reason"] == "BackoffLimitExceeded"
    assert job["failed_pods"][0]["exit_code"] == 7


def test_a_receiver_answering_500_gets_the_same_delivery_again_until_it_takes_it(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    receiver.behaviour = Behaviour(fail_first=2)
    path = _path()
    submission = eksops.create_namespace(namespace, callback_url=receiver.url(path))
    wait_until(lambda: len(receiver.delivered(path)) == 1, timeout=30)
    posts = receiver.posts(path)
    assert [post.answered for post in posts] == [500, 500, 204]
    assert len({post.headers[callbacks.DELIVERY_HEADER] for post in posts}) == 1
    wait_until(
        lambda: eksops.status(submission.request_id).callbacks["request"].state == "delivered"
    )
    delivery = eksops.status(submission.request_id).callbacks["request"]
    assert delivery.attempts == 3


def test_a_receiver_that_is_down_is_given_up_on_and_the_status_says_why(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    url = receiver.url(_path())
    receiver.stop()  # nothing listens on its port now
    submission = eksops.create_namespace(namespace, callback_url=url)
    assert eksops.wait(submission.request_id, 30).state.value == "succeeded"
    wait_until(
        lambda: eksops.status(submission.request_id).callbacks["request"].state == "failed",
        timeout=30,
    )
    delivery = eksops.status(submission.request_id).callbacks["request"]
    assert delivery.attempts == 3
    assert delivery.error is not None
    assert "Connection refused" in delivery.error or "NewConnectionError" in delivery.error


def test_a_slow_receiver_does_not_slow_the_queue(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    # Each POST stalls past the sender's 1 s read timeout: every delivery times out.
    receiver.behaviour = Behaviour(delay_seconds=3.0)
    path = _path()
    hooked = [
        eksops.create_namespace(f"{namespace}-{i}", callback_url=receiver.url(path))
        for i in range(12)
    ]
    started = time.monotonic()
    plain = eksops.create_namespace(namespace)
    assert eksops.wait(plain.request_id, 30).state.value == "succeeded"
    for submission in hooked:
        assert eksops.wait(submission.request_id, 30).state.value == "succeeded"
    # 12 deliveries x 3 attempts x >= 1 s each would be tens of seconds if they queued
    # ahead of the requests; the requests finish in their usual time.
    assert time.monotonic() - started < 15
    wait_until(lambda: len(receiver.posts(path)) >= 12, timeout=30)
    delivery = eksops.status(hooked[0].request_id).callbacks["request"]
    assert delivery.state in ("pending", "failed")
    assert delivery.error is not None
    assert "timed out" in delivery.error.lower() or "Timeout" in delivery.error


def test_a_batch_callback_gets_every_requests_and_every_jobs_end(
    eksops: EksOps, namespace: str, receiver: Receiver
) -> None:
    path = _path()
    items = [{"job_manifest": job_manifest(f"bj-{i}"), "namespace": namespace} for i in range(5)]
    submission = eksops.submit_many(Operation.CREATE_JOB, items, callback_url=receiver.url(path))
    wait_until(lambda: len(receiver.delivered(path)) >= 10, timeout=90)
    kinds: dict[str, set[str]] = {}
    for post in receiver.delivered(path):
        kinds.setdefault(post.payload["kind"], set()).add(post.payload["request_id"])
    request_ids = {item.request_id for item in submission.items}
    assert kinds == {"request": request_ids, "job": request_ids}
    batch = eksops.batch(submission.batch_id)
    assert batch is not None
    assert batch.callback_url == receiver.url(path)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("http:///nohost", "with a host"),
        ("https://user:secret@example.com/", "credentials"),
        ("http://example.com/" + "x" * 2100, "at most 2048"),
        ("http://exa mple.com/", "http:// or https://"),
    ],
)
def test_a_bad_callback_url_is_refused_at_submission(
    eksops: EksOps, namespace: str, url: str, problem: str
) -> None:
    with pytest.raises(InvalidRequest, match="callback_url") as caught:
        eksops.create_namespace(namespace, callback_url=url)
    assert problem in str(caught.value)
