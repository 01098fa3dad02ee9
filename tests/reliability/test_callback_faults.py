"""Callbacks survive their sender: a worker killed mid-POST leaves the delivery to another."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.reliability.conftest import Stack
from tests.support.receiver import Behaviour, Receiver
from tests.support.waiting import wait_until
from worker import callbacks

pytestmark = pytest.mark.integration

SENDING = {
    "CALLBACK_SIGNING_KEY": "reliability-callback-key",
    "CALLBACK_TIMEOUT_SECONDS": "5",
    "CALLBACK_BACKOFF_SECONDS": "0.5",
}


@pytest.mark.timeout(120)
def test_a_sender_killed_mid_delivery_leaves_it_to_another_worker(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    receiver = Receiver(behaviour=Behaviour(delay_seconds=4.0))
    try:
        stack = make_stack()
        first = stack.worker(**SENDING)
        eksops = stack.client()
        submission = eksops.create_namespace(namespace, callback_url=receiver.url("/hook"))
        assert eksops.wait(submission.request_id, 30).state.value == "succeeded"
        # The POST has reached the receiver, which holds it: kill its sender now.
        wait_until(lambda: receiver.pending() == 1, timeout=15)
        first.kill()
        receiver.behaviour = Behaviour()
        stack.worker(**SENDING)
        killed_at = time.monotonic()
        wait_until(
            lambda: eksops.status(submission.request_id).callbacks["request"].state == "delivered",
            timeout=60,
        )
        first_post, second_post = receiver.posts("/hook")
        # Taken over once the entry was idle for twice the longest delivery (2 x (3 + 5) s).
        assert second_post.arrived - killed_at >= 10
        # The same delivery, sent again: receivers deduplicate on its ID.
        delivery = callbacks.DELIVERY_HEADER
        assert first_post.headers[delivery] == second_post.headers[delivery]
        assert eksops.status(submission.request_id).callbacks["request"].attempts == 1
    finally:
        receiver.stop()
