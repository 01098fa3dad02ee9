"""The kombu and Celery privates the delivery layer relies on are still there, as used."""

from __future__ import annotations

import pytest
from celery.backends.redis import RedisBackend
from kombu.transport import redis

from worker.delivery import privates
from worker.delivery.privates import Private, problems


def test_every_private_the_delivery_layer_uses_is_there_with_its_parameters() -> None:
    found = problems()
    assert found == [], "kombu or Celery changed under eksops:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("private", "expected"),
    [
        (Private(redis.Channel, "_no_such_private"), "redis.Channel._no_such_private is gone"),
        (
            Private(redis.Channel, "_brpop_start", ("self",)),
            "redis.Channel._brpop_start takes ('self', 'timeout') now",
        ),
        (
            Private(RedisBackend, "_never_set", in_init=True),
            "RedisBackend._never_set is no longer set by __init__",
        ),
    ],
)
def test_a_change_is_reported_naming_the_attribute(
    monkeypatch: pytest.MonkeyPatch, private: Private, expected: str
) -> None:
    monkeypatch.setattr(privates, "PRIVATES", (private,))
    (problem,) = problems()
    assert expected in problem


def test_the_layer_uses_no_private_it_does_not_declare() -> None:
    # Every "._name" the transport and result store reach for on kombu or Celery objects
    # is in the list (their own attributes and redis-py's public API aside).
    import ast  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    from worker.delivery import intake, results, transport  # noqa: PLC0415

    declared = {private.name for private in privates.PRIVATES}
    own = {"_popping", "_inbox_off_until", "_sync_client", "_channel", "_transport"}
    own |= {"_take", "_refused", "_forget", "_return_item", "_taking", "_taking_bulk"}
    own |= {"_bulk_allowed", "_takes_lanes", "_waiting_without_bulk", "_own_bell", "_bulk_done"}
    own |= {"_taken", "_take_now", "_recovered", "_recover_unanswered_takes", "_taker_ttl"}
    own |= {"_taking_interactive", "_lock", "_ring"}  # the transport's, and its Runners'
    # The intake's own.
    own |= {"_accept", "_runnable", "_tasks", "_bell", "_note", "_recover", "_client"}
    own |= {"_wait_and_take", "_return_unanswered", "_delivered", "_hand_over", "_ack"}
    own |= {"_connection"}
    used: set[str] = set()
    for module in (transport, results, intake):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            attribute = node.attr if isinstance(node, ast.Attribute) else ""
            if attribute.startswith("_") and not attribute.startswith("__"):
                used.add(attribute)
    assert used - declared - own == set()
