"""kombu's Redis transport, hardened: no window to lose a message, no crash on stray items.

Workers take task messages through an inbox (see :mod:`worker.delivery.inbox`): moved
from the queue and claimed, never popped and then recorded. That needs one Redis key to
wait on: a channel consuming a single queue without priority levels (eksops's workers;
see ``priority_steps`` in ``worker.delivery.config``). Celery's own control reply
queues (``*.reply.celery.pidbox``) carry no work and keep kombu's ``BRPOP``; any other
channel that cannot use an inbox falls back to it too, with its pop-then-record window,
and says so once.

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
import time
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from worker.delivery.envelope import is_envelope
from worker.delivery.inbox import Claimed, Inbox, abandonment_delay, sweep

logger = logging.getLogger(__name__)


def _shows(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 120 else text[:117] + "..."


# After Redis refused the inbox (out of memory), channels pop messages this long.
_INBOX_OFF_SECONDS = 30.0

# What parsing a queue item can raise: not JSON, not text, or nested past Python's limit.
_UNREADABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)


def kombu(obj: object) -> Any:
    """``obj`` as kombu's Redis transport uses it: attributes its type hints do not declare."""
    return obj


def _dropped(why: str) -> None:
    logger.error("Dropped an item of the task queue that is not a message (%s)", why)


def is_control_queue(name: str) -> bool:
    """Return whether ``name`` is one of Celery's control queues (``*.celery.pidbox``).

    Replies to broadcasts (ping, mingle) carry no work: losing one costs a retried
    broadcast, and an inbox for them only adds writes (and, after a broker restart,
    spun returning the same reply).
    """
    return name.endswith(".pidbox")


class QoS(redis.QoS):
    """kombu's QoS, which loses no message to a broker outage and never stops the worker.

    A message claimed from an inbox is recorded already: it is only tracked in memory.
    A message popped from the queue (kombu's BRPOP, on channels that cannot use an
    inbox) is then recorded as unacknowledged in a second write; if the broker goes away
    in between, kombu dropped the message (popped, recorded nowhere). Here it is run
    anyway, tracked in memory only: only a crash of this worker before it ends could
    still lose it. Every periodic restore also sweeps the inboxes.

    And when the broker goes away while a worker polls it, Celery collects the connection
    (its transport loses its settings) and then closes it. If the channel had not been
    closed yet, closing it restores the messages being worked on, and kombu rebuilds a
    connection pool from settings that are gone: an ``AttributeError`` that Celery
    treats as unrecoverable, stopping the worker. Those messages are still in Redis's
    unacked index; kombu returns them to the queue after the visibility timeout.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        claimed = self._channel.claimed
        if delivery_tag in claimed:  # recorded by the claim already
            claimed.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        try:
            super().append(message, delivery_tag)
        except (RedisError, OSError) as exc:
            logger.warning(
                "Could not record message %s as unacknowledged (%s); running it anyway",
                delivery_tag,
                exc,
            )
            virtual.QoS.append(self, message, delivery_tag)

    @property
    def _channel(self) -> Channel:
        channel = self.channel
        assert isinstance(channel, Channel)
        return channel

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

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        self._channel.sweep_inboxes()
        super().restore_visible(start, num, interval)


class Channel(redis.Channel):
    """A Redis channel that drops queue items it cannot parse instead of crashing.

    It also reuses one synchronous client per connection pool: kombu builds a new
    ``redis.Redis`` for every ack, bookkeeping write and event, about three per task,
    which cost more CPU than the commands themselves. A client is thread-safe; it is
    rebuilt when kombu replaces the pool (after a reconnect).
    """

    QoS = QoS
    _sync_client: Any = None
    _inbox: Inbox | None = None
    _moving = False  # the command in flight is the inbox's BLMOVE, not kombu's BRPOP
    _popping = False  # warned that this channel uses kombu's BRPOP

    _inbox_off_until = 0.0  # Redis refused the inbox (out of memory): BRPOP until then

    @property
    def claimed(self) -> set[str]:
        """Delivery tags the claim recorded, until kombu's QoS takes the message.

        Kept by the connection, not the channel: kombu hands a queue's messages to the
        last channel that consumed it, which need not be the channel that claimed them.
        """
        transport = self.connection
        assert isinstance(transport, Transport)
        return transport.claimed

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

    def _single_key(self) -> str | None:
        """The one task-queue list this channel waits on, or None (several, or not tasks)."""
        queues = list(self.active_queues)
        if self.global_keyprefix or len(queues) != 1 or time.monotonic() < self._inbox_off_until:
            return None
        if is_control_queue(queues[0]):
            return None
        keys = {kombu(self)._q_for_pri(queues[0], step) for step in self.priority_steps}
        return keys.pop() if len(keys) == 1 else None

    def _brpop_start(self, timeout: float | None = None) -> None:
        key = self._single_key()
        if key is None:
            tasks = [queue for queue in self.active_queues if not is_control_queue(queue)]
            if tasks and not self._popping:
                self._popping = True
                logger.warning(
                    "Consuming %s without an inbox (several Redis lists, a global key "
                    "prefix, or Redis refused the inbox): messages are popped and then "
                    "recorded (kombu's BRPOP)",
                    sorted(self.active_queues),
                )
            self._moving = False
            super()._brpop_start(timeout)  # type: ignore[misc]
            return
        if self._inbox is None or self._inbox.queue != key:
            self._inbox = Inbox(
                key,
                source=next(iter(self.active_queues)),
                abandoned_after=abandonment_delay(kombu(self).visibility_timeout),
            )
        if self._inbox.heartbeat_due():  # registered before anything can be moved in
            try:
                self._inbox.heartbeat(self._create_client())
            except ResponseError as exc:
                self._refused(exc)
                super()._brpop_start(timeout)  # type: ignore[misc]
                return
        self._moving = True
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        wait = self.brpop_timeout if timeout is None else timeout
        self.client.connection.send_command(*self._inbox.move_command(wait or 0))

    def _brpop_read(self, **options: Any) -> Any:
        if not self._moving:
            try:
                return super()._brpop_read(**options)  # type: ignore[misc]
            except _UNREADABLE as exc:
                _dropped(f"not JSON: {exc!r}")
                return True
        inbox = self._inbox
        assert inbox is not None
        try:
            try:
                moved = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except kombu(self).connection_errors:
                self.client.connection.disconnect()  # reconnects on the next poll
                raise
            except ResponseError as exc:  # BLMOVE writes, so Redis out of memory refuses it
                self._refused(exc)
                raise virtual.Empty() from exc
            if moved is None:
                raise virtual.Empty()
            claimed = inbox.claim(
                self._create_client(),
                unacked_index=self.unacked_index_key,
                unacked=self.unacked_key,
            )
            if claimed is None:  # a sweep returned it to the queue meanwhile
                raise virtual.Empty()
            self._take(claimed, inbox.source)
            return True
        finally:
            self._in_poll = None
            kombu(self)._flush_brpop_reauth()

    def _take(self, claimed: Claimed, queue: str) -> None:
        """Deliver a claimed item, or drop it if it is not a message."""
        try:
            message = loads(bytes_to_str(claimed.item))
        except _UNREADABLE as exc:
            _dropped(f"not JSON: {exc!r}")
            self._forget(claimed.tag)
            return
        if not is_envelope(message):
            _dropped(f"not a message envelope: {_shows(message)}")
            self._forget(claimed.tag)
            return
        if claimed.tag is None:
            self.connection._deliver(message, queue)
            return
        self.claimed.add(claimed.tag)
        try:
            self.connection._deliver(message, queue)
        except Exception as exc:
            if claimed.tag not in self.claimed:  # kombu took it: its QoS deals with it
                raise
            # kombu could not even build a message of it (a body that is not base64, say):
            # it would fail the same way on every redelivery, stopping a worker each time.
            _dropped(f"kombu cannot read it: {exc!r}")
            self._forget(claimed.tag)
            return
        except BaseException:
            self.claimed.discard(claimed.tag)  # recorded: back after the visibility timeout
            raise
        if claimed.tag in self.claimed:  # taken without an ack to wait for
            self._forget(claimed.tag)

    def _refused(self, exc: ResponseError) -> None:
        """Use kombu's BRPOP for a while: Redis refuses the inbox's writes (out of memory)."""
        self._inbox_off_until = time.monotonic() + _INBOX_OFF_SECONDS
        self._moving = False
        logger.warning(
            "Redis refused the inbox (%s); popping messages for %.0fs", exc, _INBOX_OFF_SECONDS
        )

    def _forget(self, tag: str | None) -> None:
        if tag is not None:
            self.claimed.discard(tag)
            kombu(self.qos)._remove_from_indices(tag).execute()

    def sweep_inboxes(self) -> None:
        """Return this channel's inbox, and any a dead consumer left, to their queues."""
        client = self._create_client()
        silence = abandonment_delay(kombu(self).visibility_timeout)
        sweep(client, self._inbox, self._return_item, abandoned_after=silence)

    def _return_item(self, item: bytes, pipe: Any) -> None:
        try:
            message = loads(bytes_to_str(item))
            info = message["properties"]["delivery_info"]
            exchange, routing_key = info["exchange"], info["routing_key"]
        except (*_UNREADABLE, ValueError, TypeError, KeyError) as exc:
            _dropped(f"not a message envelope ({exc!r}): {_shows(item)}")
            return
        kombu(self)._do_restore_message(message, exchange, routing_key, pipe)


class Transport(redis.Transport):
    """The Redis transport with :class:`Channel`, and envelopes checked before delivery."""

    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimed: set[str] = set()

    def _deliver(self, message: Any, queue: str | None) -> Any:
        if not is_envelope(message):
            _dropped(f"not a message envelope: {_shows(message)}")
            return None
        return super()._deliver(message, queue)


class SentinelChannel(Channel, redis.SentinelChannel):
    """:class:`Channel` on the master that kombu's Sentinel channel finds (and re-finds).

    kombu's Sentinel channel only decides where the connections go; everything the
    inbox does (move, claim, sweep, heartbeats) runs through the same connections, so
    on the current master, and a demoted master's connection error is handled like any
    broker outage.
    """


class SentinelTransport(Transport, redis.SentinelTransport):
    """:class:`Transport` through Redis Sentinel (``sentinel://`` broker URLs)."""

    Channel = SentinelChannel
    default_port = redis.SentinelTransport.default_port
