"""kombu's Redis transport, hardened against items that are not messages.

kombu pops an item from the queue list and parses it as a message envelope; an item
that is not JSON, or not shaped like an envelope, raises out of the worker's event
loop and Celery stops the whole worker ("Unrecoverable error"). Anything can write to
a Redis list, so one stray LPUSH must not take a worker down. Here such an item is
logged once and dropped: it was already popped, and it was never tracked as unacked,
so there is nothing to requeue and no redelivery loop. A broker lost mid-poll must not
stop the worker either (see :class:`QoS`). Everything else is kombu's.

Used by workers (``broker_transport`` in celeryconfig); the URL's ``redis://`` or
``rediss://`` still decides the connection, TLS included.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kombu.transport import redis, virtual
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def _shows(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 120 else text[:117] + "..."


def is_envelope(message: object) -> bool:
    """Return whether ``message`` has the shape of a kombu message envelope."""
    if not isinstance(message, dict) or "body" not in message:
        return False
    properties = message.get("properties")
    return (
        isinstance(properties, dict)
        and isinstance(properties.get("delivery_info"), dict)
        and "delivery_tag" in properties
    )


class QoS(redis.QoS):
    """kombu's QoS, which loses no message to a broker outage and never stops the worker.

    A message popped from the queue (BRPOP) is then recorded as unacknowledged in a
    second write; if the broker goes away in between, kombu dropped the message (popped,
    recorded nowhere). Here it is run anyway, tracked in memory only: only a crash of
    this worker before it ends could still lose it.

    And when the broker goes away while a worker polls it, Celery collects the connection
    (its transport loses its settings) and then closes it. If the channel had not been
    closed yet, closing it restores the messages being worked on, and kombu rebuilds a
    connection pool from settings that are gone: an ``AttributeError`` that Celery
    treats as unrecoverable, stopping the worker. Those messages are still in Redis's
    unacked index; kombu returns them to the queue after the visibility timeout.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except (RedisError, OSError) as exc:
            logger.warning(
                "Could not record message %s as unacknowledged (%s); running it anyway",
                delivery_tag,
                exc,
            )
            virtual.QoS.append(self, message, delivery_tag)

    def restore_unacked(self, client: Any = None) -> None:
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
            delivered: dict[str, Any] = self._delivered or {}
            logger.warning(
                "Broker connection already closed; %d unacknowledged message(s) return "
                "to the queue after the visibility timeout",
                len(delivered),
            )
            delivered.clear()
            return
        super().restore_unacked(client)


class Channel(redis.Channel):
    """A Redis channel that drops queue items it cannot parse instead of crashing.

    It also reuses one synchronous client per connection pool: kombu builds a new
    ``redis.Redis`` for every ack, bookkeeping write and event, about three per task,
    which cost more CPU than the commands themselves. A client is thread-safe; it is
    rebuilt when kombu replaces the pool (after a reconnect).
    """

    QoS = QoS
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            # A channel of a collected connection (an ack of a message that was running
            # while the broker went away): a connection error, which kombu and Celery
            # handle, not an AttributeError, which stops the worker. The message stays in
            # the unacked index and its request's stored outcome answers a redelivery.
            raise RedisConnectionError("this channel's broker connection is closed")
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        cached = self._sync_client
        if cached is None or cached.connection_pool is not self.pool:
            cached = self._sync_client = super()._create_client(asynchronous=False)  # type: ignore[misc]
        return cached

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[misc]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            logger.error(
                "Dropped an item of the task queue that is not a message (not JSON: %s)", exc
            )
            return True


class Transport(redis.Transport):
    """The Redis transport with :class:`Channel`, and envelopes checked before delivery."""

    Channel = Channel

    def _deliver(self, message: Any, queue: str | None) -> Any:
        if not is_envelope(message):
            logger.error(
                "Dropped an item of the task queue that is not a message envelope: %s",
                _shows(message),
            )
            return None
        return super()._deliver(message, queue)
