"""Redis going away mid-work: nothing lost, nothing run twice, nothing silently empty."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from kombu import Connection, Queue
from kombu.message import Message

from tests.reliability.conftest import (
    Stack,
    batch_when_readable,
    final,
    jobs_by_request,
    manifest,
)
from tests.support.waiting import wait_until
from worker.contracts import QUEUE, Operation, RequestState
from worker.delivery import lanes
from worker.delivery.transport import TAKER, Transport
from worker.errors import Unavailable
from worker.operations import ClusterClient
from worker.queues import UNACKED, UNACKED_INDEX

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_a_redis_restart_mid_batch_loses_nothing_and_runs_nothing_twice(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    # Three lanes busy across the restart: two batches (two bulk groups) and singles.
    stack = make_stack()
    worker = stack.worker()
    eksops = stack.client()
    stack.sim.admin.add_fault("latency", ms=60, verb="create", resource="jobs")
    batches = [
        eksops.submit_many(
            Operation.CREATE_JOB,
            [{"job_manifest": manifest(), "namespace": namespace} for _ in range(size)],
        )
        for size in (60, 30)
    ]
    singles = [eksops.create_job(manifest(), namespace).request_id for _ in range(5)]
    assert [b.accepted for b in batches] == [60, 30]

    wait_until(lambda: (s := eksops.batch(batches[0].batch_id)) and s.counts["succeeded"] >= 10)
    stack.broker.restart(down_for=2.0)
    singles += [eksops.create_job(manifest(), namespace).request_id for _ in range(5)]

    for submission in batches:
        status = wait_until(
            lambda s=submission: (b := batch_when_readable(eksops, s.batch_id)) and b.done and b,
            timeout=120,
            interval=0.5,
        )
        assert status.counts["succeeded"] == submission.accepted
        assert status.counts["failed"] == 0
    for rid in singles:
        assert final(eksops, rid).state is RequestState.SUCCEEDED
    jobs = jobs_by_request(kube, namespace)
    expected = [i.request_id for b in batches for i in b.items if i.request_id] + singles
    assert sorted(jobs) == sorted(expected)
    assert all(len(created) == 1 for created in jobs.values())
    assert worker.alive


@pytest.mark.timeout(120)
def test_a_result_finished_while_the_backend_is_down_is_stored_once_it_is_back(
    make_stack: Callable[..., Stack], kube: ClusterClient, namespace: str
) -> None:
    stack = make_stack(separate_backend=True)
    stack.worker()
    eksops = stack.client()
    assert stack.backend is not None
    stack.sim.admin.add_fault("latency", ms=2000, verb="create", resource="jobs", times=1)
    submission = eksops.create_job(manifest("during-outage"), namespace)
    wait_until(lambda: eksops.status(submission.request_id).state is RequestState.STARTED)

    stack.backend.stop()
    with pytest.raises(Unavailable, match="Redis is unreachable"):
        eksops.status(submission.request_id)  # never a silent "queued" or empty answer
    wait_until(lambda: jobs_by_request(kube, namespace).get(submission.request_id))
    time.sleep(2)  # the worker finished the create and is retrying the result write
    stack.backend.start()

    status = final(eksops, submission.request_id, timeout=60)
    assert status.state is RequestState.SUCCEEDED
    assert status.result is not None
    assert status.result["job_name"] == "during-outage"
    assert len(jobs_by_request(kube, namespace)[submission.request_id]) == 1


@pytest.mark.timeout(60)
def test_a_broker_lost_mid_poll_never_stops_the_worker_and_loses_no_message(
    make_stack: Callable[..., Stack],
) -> None:
    # When the broker goes away under a polling worker, Celery collects the connection
    # (kombu's transport forgets its settings) and then closes it. A channel that still
    # held messages being worked on used to rebuild a connection pool from the
    # forgotten settings: AttributeError, "Unrecoverable error", the worker stopped.
    stack = make_stack()
    queue = Queue("outage", routing_key="outage")
    options = {"visibility_timeout": 1}
    with Connection(stack.broker.url, transport=Transport, transport_options=options) as first:
        first.Producer().publish({"n": 1}, routing_key="outage", declare=[queue])
        channel = first.default_channel
        taken = channel.basic_get("outage", no_ack=False)
        assert taken is not None
        channel.connection.client = None  # what Connection.collect() does to the transport
        with pytest.raises(first.connection_errors):  # handled by Celery, unlike AttributeError
            channel.basic_ack(taken.delivery_tag)
        channel.close()  # must not raise
    time.sleep(1.2)  # the visibility timeout
    with Connection(stack.broker.url, transport=Transport, transport_options=options) as second:
        second.default_channel.qos.restore_visible()
        again = second.default_channel.basic_get("outage", no_ack=True)
        assert again is not None
        assert again.payload == {"n": 1}


@pytest.mark.timeout(60)
def test_a_message_popped_just_before_the_broker_goes_away_still_runs(
    make_stack: Callable[..., Stack],
) -> None:
    # A message is popped from the queue, then recorded as unacknowledged in a second
    # write; kombu dropped a message whose second write failed.
    stack = make_stack()
    queue = Queue("popped", routing_key="popped")
    with Connection(stack.broker.url, transport=Transport) as connection:
        connection.Producer().publish({"n": 1}, routing_key="popped", declare=[queue])
        channel = connection.default_channel
        popped = channel.basic_get("popped", no_ack=True)
        assert popped is not None
        stack.broker.stop()
        channel.qos.append(popped, popped.delivery_tag)  # must not raise: the message runs
        assert popped.delivery_tag in channel.qos._delivered


def _lanes_consumer(connection: Connection, received: list[Message], *, ack: bool) -> Any:
    """A consumer of the lanes as a worker's (this process the taker), filling ``received``."""

    def on_message(_body: Any, message: Message) -> None:
        received.append(message)
        if ack:
            message.ack()

    return connection.Consumer(Queue(QUEUE), callbacks=[on_message], accept=["json"])


def _connect(url: str) -> Connection:
    options = {"priority_steps": [0], "visibility_timeout": 3600}
    return Connection(url, transport=Transport, transport_options=options)


def _drain(connection: Connection, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=timeout)


@pytest.mark.timeout(60)
def test_a_take_redis_ran_but_never_answered_is_returned_when_its_taker_reconnects(
    make_stack: Callable[..., Stack],
) -> None:
    # Redis stopping right after a take (its last replies are never sent) leaves the
    # message recorded as unacknowledged, as the taker's, and in no worker's hands:
    # kombu would return it after the visibility timeout (an hour here).
    stack = make_stack()
    redis = stack.broker.client()
    request = stack.client().submit(Operation.CREATE_NAMESPACE, {"namespace_name": "lost-reply"})
    lost = lanes.take(
        redis,
        bulk=False,
        unacked_index=UNACKED_INDEX,
        unacked=UNACKED,
        taker=TAKER.key,
        taker_ttl=60,
    )
    assert lost is not None
    assert redis.llen(QUEUE) == 0

    received: list[Message] = []
    with _connect(stack.broker.url) as connection, _lanes_consumer(connection, received, ack=True):
        _drain(connection, timeout=5)

    (again,) = received
    assert again.headers["id"] == request.request_id
    assert again.delivery_tag == lost.tag
    assert (redis.zcard(UNACKED_INDEX), redis.hlen(UNACKED)) == (0, 0)
    assert redis.scard(TAKER.key) == 0


@pytest.mark.timeout(60)
def test_a_message_its_taker_is_still_running_stays_with_it_across_a_reconnect(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    redis = stack.broker.client()
    stack.client().submit(Operation.CREATE_NAMESPACE, {"namespace_name": "running"})
    running: list[Message] = []
    with _connect(stack.broker.url) as first, _lanes_consumer(first, running, ack=False):
        _drain(first, timeout=5)
        assert len(running) == 1  # received, not acknowledged: still running
        again: list[Message] = []
        with _connect(stack.broker.url) as second, _lanes_consumer(second, again, ack=True):
            _drain(second, timeout=1)  # the reconnected channel's first take
        assert again == []
        assert redis.hexists(UNACKED, running[0].delivery_tag)
        assert redis.sismember(TAKER.key, running[0].delivery_tag)
        running[0].ack()
    assert (redis.hlen(UNACKED), redis.scard(TAKER.key)) == (0, 0)
