"""Every private of kombu and Celery eksops relies on, in one list.

The transport (``worker.delivery.transport``) extends kombu's Redis channel and QoS,
the result store (``worker.delivery.results``) writes Celery's result meta the way its
Redis backend does, and the worker's consumer (``worker.taskevents.Consumer``)
publishes Celery's buffered task events on a timer of the event loop. They reach past
the public API, so kombu and Celery are pinned to one minor version in
``pyproject.toml``, and this list names each private with the parameters eksops calls
it with. :func:`problems` checks the installed libraries
against it; a unit test fails on any problem, naming the attribute, so an upgrade
fails loudly in CI instead of quietly in production.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from celery.backends.base import Backend, KeyValueStoreBackend
from celery.backends.redis import RedisBackend
from celery.worker.consumer import Consumer
from kombu.asynchronous import Hub
from kombu.transport import redis, virtual


@dataclass(frozen=True)
class Private:
    """One attribute of a library class: a method with these parameters, or a value."""

    owner: type
    name: str
    parameters: tuple[str, ...] | None = None  # None: an attribute, not a method
    # An attribute set by __init__ rather than on the class: looked for in its source.
    in_init: bool = False

    @property
    def label(self) -> str:
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"


PRIVATES: tuple[Private, ...] = (
    # kombu's Redis channel: the lanes replace its BRPOP with a wait on their bells and
    # a take sent behind it.
    Private(redis.Channel, "_brpop_start", ("self", "timeout")),
    Private(redis.Channel, "_brpop_read", ("self", "options")),
    # Called on a poll error of the BRPOP connection: reads one reply (ours: two).
    Private(redis.Channel, "_poll_error", ("self", "type", "options")),
    Private(redis.Channel, "_flush_brpop_reauth", ("self",)),
    Private(redis.Channel, "_q_for_pri", ("self", "queue", "pri")),
    Private(
        redis.Channel,
        "_do_restore_message",
        ("self", "payload", "exchange", "routing_key", "pipe", "leftmost"),
    ),
    Private(redis.Channel, "_create_client", ("self", "asynchronous")),
    Private(redis.Channel, "_in_poll"),
    Private(redis.Channel, "_brpop_sent_at"),
    Private(redis.Channel, "brpop_timeout", in_init=True),
    Private(redis.Channel, "unacked_key"),
    Private(redis.Channel, "unacked_index_key"),
    Private(redis.Channel, "visibility_timeout"),
    Private(redis.Channel, "priority_steps"),
    Private(redis.Channel, "global_keyprefix"),
    Private(redis.Channel, "pool"),
    Private(redis.Channel, "client"),
    Private(redis.Channel, "connection_errors", in_init=True),
    # kombu's QoS: a claimed message is recorded already; an outage must not stop a worker.
    Private(redis.QoS, "append", ("self", "message", "delivery_tag")),
    Private(redis.QoS, "restore_unacked", ("self", "client")),
    Private(redis.QoS, "restore_visible", ("self", "start", "num", "interval")),
    Private(redis.QoS, "_remove_from_indices", ("self", "delivery_tag", "pipe")),
    Private(virtual.QoS, "append", ("self", "message", "delivery_tag")),
    Private(virtual.QoS, "_delivered", in_init=True),
    Private(redis.Transport, "_deliver", ("self", "message", "queue")),
    Private(redis.Transport, "Channel"),
    # Celery's Redis result backend: an outcome stored in one write, as it stores it.
    Private(
        KeyValueStoreBackend,
        "_get_result_meta",
        ("self", "result", "state", "traceback", "request", "format_date", "encode"),
    ),
    Private(RedisBackend, "_set_with_state", ("self", "key", "value", "state")),
    Private(KeyValueStoreBackend, "get_key_for_task", ("self", "task_id", "key")),
    Private(KeyValueStoreBackend, "encode_result", ("self", "result", "state")),
    Private(RedisBackend, "client"),
    Private(Backend, "expires", in_init=True),
    Private(RedisBackend, "failure_expires", in_init=True),
    # Celery's worker consumer: its task events flushed every FLUSH_SECONDS.
    Private(Consumer, "on_send_event_buffered", ("self",)),
    Private(Consumer, "_flush_events", ("self",)),
    Private(Consumer, "shutdown", ("self",)),
    Private(Consumer, "hub", in_init=True),
    Private(Hub, "call_soon", ("self", "callback", "args")),
    Private(Hub, "call_later", ("self", "delay", "callback", "args")),
)


def _problem(private: Private) -> str | None:
    if private.in_init:
        owner: Any = private.owner
        source = inspect.getsource(owner.__init__)
        found = f"self.{private.name} =" in source or f"self.{private.name}=" in source
        return None if found else f"{private.label} is no longer set by __init__"
    if not hasattr(private.owner, private.name):
        return f"{private.label} is gone"
    if private.parameters is None:
        return None
    member: Any = inspect.getattr_static(private.owner, private.name)
    function = getattr(member, "__func__", member)
    if not callable(function):
        return f"{private.label} is no longer a method"
    parameters = tuple(inspect.signature(function).parameters)
    if parameters != private.parameters:
        return f"{private.label} takes {parameters} now; eksops calls it with {private.parameters}"
    return None


def problems() -> list[str]:
    """Return what the installed kombu and Celery no longer offer as eksops uses it."""
    return [problem for private in PRIVATES if (problem := _problem(private)) is not None]
