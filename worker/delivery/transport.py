"""kombu's Redis transport, hardened: no window to lose a message, no crash on stray items.

Workers take task messages from the lanes (see :mod:`worker.delivery.lanes`): a
channel consuming the task queue alone, without priority levels (eksops's workers; see
``priority_steps`` in ``worker.delivery.config``), waits on the lanes' bells and takes
its next message with one script that pops it from its lane and records it as
unacknowledged in the same step, never popped and then recorded. The script is sent
behind the wait, on the same connection: Redis runs it the moment a bell rings, and
the worker wakes once, to the message already taken. Its bulk messages are
counted, so that it takes no more bulk work than its share of threads
(``interactive_share`` in the transport options). A message that comes back goes back
to its own lane. Celery's own control reply queues (``*.reply.celery.pidbox``) carry
no work and keep kombu's ``BRPOP``; any other channel falls back to it too, with its
pop-then-record window, and says so once.

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

import collections
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from worker.contracts import QUEUE
from worker.delivery import lanes
from worker.delivery.envelope import is_envelope
from worker.delivery.inbox import abandonment_delay, sweep
from worker.delivery.lanes import Taken, take

logger = logging.getLogger(__name__)


def shows(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 120 else text[:117] + "..."


# After Redis refused the inbox (out of memory), channels pop messages this long.
_INBOX_OFF_SECONDS = 30.0

# What parsing a queue item can raise: not JSON, not text, or nested past Python's limit.
UNREADABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)


class Taker:
    """This process as a taker of messages: its set in Redis (``lanes.taken_key``), named
    after its host and PID, and the tags of the messages it received and has not
    acknowledged yet (process-wide: a reconnect replaces the channels, not the work)."""

    def __init__(self) -> None:
        self.key = lanes.taken_key(f"{socket.gethostname()}:{os.getpid()}")
        self.received: set[str] = set()


TAKER = Taker()


class Runners:
    """This process's interactive runners (``worker.runners``), as its consumer sees them.

    While a runner is free, the consumer's channel leaves the interactive lane to the
    runners: it takes bulk work only and does not wait on the interactive bell. When the
    last free runner starts a request, it rings the channel's own bell, and the channel
    takes interactive work again (the overflow); when one is free again, it rings it
    again, and the channel goes back to bulk work only. A process without runners has
    none free: its channel takes both lanes.

    A message a runner must not run is handed over (:meth:`hand_over`): the channel
    delivers it to Celery's consumer at its next turn, woken by its own bell, as if it
    had taken it itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.free = 0
        self.handed: collections.deque[Taken] = collections.deque()
        self.bell = ""  # the consumer channel's own bell, once it waits
        self.watching = True  # the channel waits on the interactive bell

    def free_one(self, client: Callable[[], Any]) -> None:
        """A runner is free to take (it started, or its request ended). If the channel
        waits on the interactive bell (every runner was busy), its bell is rung: it
        waits without it again, and the next single request is the runner's."""
        with self._lock:
            self.free += 1
            ring = self.free == 1 and self.watching and bool(self.bell)
        if ring:
            self._ring(client)

    def _ring(self, client: Callable[[], Any]) -> None:
        """Ring the channel's bell, best effort: a ring lost to a Redis error costs the
        channel one poll interval, never the request the caller is about to run."""
        try:
            lanes.wake(client(), self.bell)
        except (RedisError, OSError) as exc:
            logger.debug("Could not ring the consumer's bell: %s", exc)

    def busy(self, client: Callable[[], Any]) -> None:
        """A runner starts a request (or stops); the channel takes interactive work when
        none is left free. ``client``: a Redis client, to ring the channel's bell."""
        with self._lock:
            self.free = max(0, self.free - 1)
            ring = self.free == 0 and not self.watching and bool(self.bell)
        if ring:
            self._ring(client)

    def hand_over(self, client: Callable[[], Any], taken: Taken) -> None:
        """Give a taken message to the consumer's channel, and wake it."""
        self.handed.append(taken)
        if self.bell:
            self._ring(client)

    def take_handed(self) -> list[Taken]:
        """What runners handed over since the last call (the channel delivers it)."""
        items: list[Taken] = []
        while True:
            try:
                items.append(self.handed.popleft())
            except IndexError:
                return items

    def give_back(self, client: Any, qos: Any) -> None:
        """Return to their lanes the messages handed over and never delivered (the
        worker stops): they are recorded as unacknowledged, in no one's hands."""
        for taken in self.take_handed():
            if taken.tag is not None:
                qos.restore_by_tag(taken.tag, client)


RUNNERS = Runners()


def _new_taker_after_fork() -> None:
    global TAKER, RUNNERS  # noqa: PLW0603 - one per process, and a forked child is another
    TAKER = Taker()
    RUNNERS = Runners()


os.register_at_fork(after_in_child=_new_taker_after_fork)


def kombu(obj: object) -> Any:
    """``obj`` as kombu's Redis transport uses it: attributes its type hints do not declare."""
    return obj


def dropped(why: str) -> None:
    logger.error("Dropped an item of the task queue that is not a message (%s)", why)


def is_control_queue(name: str) -> bool:
    """Return whether ``name`` is one of Celery's control queues (``*.celery.pidbox``).

    Replies to broadcasts (ping, mingle) carry no work: losing one costs a retried
    broadcast, and an inbox for them only adds writes (and, after a broker restart,
    spun returning the same reply).
    """
    return name.endswith(".pidbox")


def return_unanswered(
    client: Any,
    qos: Any,
    *,
    taker: str,
    unacked: str,
    held: set[str] | frozenset[str],
    before_return: Callable[[str], None] | None = None,
) -> None:
    """Return to their lanes the messages in ``taker``'s set that are not ``held``: their
    take ran in Redis and was never answered. Each leaves the set either way.
    ``before_return`` is called with each tag before its message goes back (to undo
    what was sent behind the take that was never answered)."""
    for tag in [bytes_to_str(tag) for tag in client.smembers(taker)]:
        if tag in held:
            continue
        if client.hexists(unacked, tag):
            logger.warning(
                "Message %s was taken by this worker but the take was never answered "
                "(Redis stopped?); returning it to its lane",
                tag,
            )
            if before_return is not None:
                before_return(tag)
            qos.restore_by_tag(tag, client)
        client.srem(taker, tag)


class QoS(redis.QoS):
    """kombu's QoS, which loses no message to a broker outage and never stops the worker.

    A message taken from a lane is recorded already: it is only tracked in memory (and,
    for a bulk message, counted against this worker's bulk share until it is acked or
    rejected). A message popped from a queue (kombu's BRPOP, on channels that cannot
    take from the lanes) is then recorded as unacknowledged in a second write; if the
    broker goes away in between, kombu dropped the message (popped, recorded nowhere).
    Here it is run anyway, tracked in memory only: only a crash of this worker before it
    ends could still lose it. Every periodic restore also sweeps inboxes that workers of
    earlier versions left.

    And when the broker goes away while a worker polls it, Celery collects the connection
    (its transport loses its settings) and then closes it. If the channel had not been
    closed yet, closing it restores the messages being worked on, and kombu rebuilds a
    connection pool from settings that are gone: an ``AttributeError`` that Celery
    treats as unrecoverable, stopping the worker. Those messages are still in Redis's
    unacked index; kombu returns them to the queue after the visibility timeout.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        TAKER.received.add(delivery_tag)
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

    def ack(self, delivery_tag: str) -> None:
        self._bulk_done(delivery_tag)
        TAKER.received.discard(delivery_tag)
        self.forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def forget(self, delivery_tag: str) -> None:
        """Forget in Redis what the take recorded of a message done with (``lanes.ack``).

        kombu's own ack as one script call: the event loop waits for it, and a
        transaction of two commands costs redis-py four replies to read.
        """
        with kombu(self.channel).conn_or_acquire() as client:
            lanes.ack(
                client,
                delivery_tag,
                unacked_index=self.unacked_index_key,
                unacked=self.unacked_key,
                taker=TAKER.key,
            )

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self._bulk_done(delivery_tag)
        TAKER.received.discard(delivery_tag)
        super().reject(delivery_tag, requeue)
        with kombu(self.channel).conn_or_acquire() as client:
            client.srem(TAKER.key, delivery_tag)

    def _bulk_done(self, delivery_tag: str) -> None:
        transport = self.channel.connection
        if not isinstance(transport, Transport):
            # A channel of a connection collected after an outage: kombu's ack raises the
            # connection error Celery handles; the new connection started its count afresh.
            return
        if delivery_tag in transport.bulk:
            transport.bulk.discard(delivery_tag)
            self._channel.bulk_share_freed()

    @property
    def _channel(self) -> Channel:
        channel = self.channel
        assert isinstance(channel, Channel)
        return channel

    @property
    def _transport(self) -> Transport:
        transport = self.channel.connection
        assert isinstance(transport, Transport)
        return transport

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
        self._transport.bulk.clear()
        restored = list(self._delivered or {})
        super().restore_unacked(client)
        for tag in restored:  # back in their lanes: neither received nor held any more
            TAKER.received.discard(tag)
        if restored:
            with kombu(self.channel).conn_or_acquire(client) as redis_client:
                redis_client.srem(TAKER.key, *restored)

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
    from_transport_options = (*redis.Channel.from_transport_options, "interactive_share")
    #: The share of this worker's threads (prefetched messages) kept for interactive work.
    interactive_share = 0.0
    _sync_client: Any = None
    _taking = False  # the command in flight waits on the lanes' bells, not kombu's BRPOP
    _taking_bulk = False  # ...and this take may be a bulk message
    _taking_interactive = True  # ...or an interactive one (no runner of this process is free)
    # The channel waits on the interactive bell only (its bulk share was full): a bulk
    # message acknowledged meanwhile wakes it through its own bell, not after a poll.
    _waiting_without_bulk = False
    _own_bell = ""
    _popping = False  # warned that this channel uses kombu's BRPOP
    _recovered = False  # looked for this process's takes that were never answered

    _inbox_off_until = 0.0  # Redis refused a take (out of memory): kombu's BRPOP until then

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

    def _takes_lanes(self) -> bool:
        """Whether this channel consumes the task queue alone, taking from its lanes."""
        queues = list(self.active_queues)
        if self.global_keyprefix or queues != [QUEUE] or time.monotonic() < self._inbox_off_until:
            return False
        keys = {kombu(self)._q_for_pri(QUEUE, step) for step in self.priority_steps}
        return keys == {QUEUE}

    @property
    def _transport(self) -> Transport:
        transport = self.connection
        assert isinstance(transport, Transport)
        return transport

    def _bulk_allowed(self) -> bool:
        """Whether this worker may take a bulk message: its bulk share of threads is free."""
        prefetch = int(getattr(self.qos, "prefetch_count", 0) or 0)
        if prefetch <= 0:
            return True
        held = len(self._transport.bulk)
        return held < max(1, int(prefetch * (1 - self.interactive_share)))

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._takes_lanes():
            tasks = [queue for queue in self.active_queues if not is_control_queue(queue)]
            if tasks and not self._popping:
                self._popping = True
                logger.warning(
                    "Consuming %s without the lanes (several queues, a global key prefix, or "
                    "Redis refused a write): messages are popped and then recorded (kombu's "
                    "BRPOP)",
                    sorted(self.active_queues),
                )
            self._taking = False
            super()._brpop_start(timeout)  # type: ignore[misc]
            return
        if not self._recovered:
            self._recover_unanswered_takes()
        self._taking_bulk = self._bulk_allowed()
        if not self._own_bell:
            self._own_bell = lanes.worker_bell(uuid.uuid4().hex)
        # Interactive work is the runners' while one is free: said before it is looked
        # at, so a runner that becomes the last busy one after the look rings the bell.
        runners = RUNNERS
        runners.bell, runners.watching = self._own_bell, False
        self._taking_interactive = runners.watching = runners.free == 0
        bells = [self._own_bell]
        if self._taking_interactive:
            bells.insert(0, lanes.INTERACTIVE_BELL)
        if self._taking_bulk:
            bells.append(lanes.BULK_BELL)
        self._waiting_without_bulk = not self._taking_bulk
        self._taking = True
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()
        wait = self.brpop_timeout if timeout is None else timeout
        # The take rides behind the wait: Redis runs it as soon as a bell rings (or the
        # wait times out), and both replies come back together.
        ahead = lanes.take_command(
            bulk=self._taking_bulk,
            interactive=self._taking_interactive,
            unacked_index=self.unacked_index_key,
            unacked=self.unacked_key,
            taker=TAKER.key,
            taker_ttl=self._taker_ttl,
        )
        connection.send_packed_command(
            connection.pack_commands([("BRPOP", *bells, wait or 0), ahead])
        )

    def _brpop_read(self, **options: Any) -> Any:
        if not self._taking:
            for item in RUNNERS.take_handed():  # what runners must not run
                self._take(item, QUEUE)
            try:
                return super()._brpop_read(**options)  # type: ignore[misc]
            except UNREADABLE as exc:
                dropped(f"not JSON: {exc!r}")
                return True
        try:
            connection = self.client.connection
            try:
                # A token, or nothing after the poll interval: the take sent behind the
                # wait ran either way (a token is only a wake-up; a message may wait
                # without one). Both replies are read, whatever the first says.
                try:
                    self.client.parse_response(connection, "BRPOP", **options)
                except ResponseError as exc:
                    logger.warning("Waiting on the lanes' bells failed: %s", exc)
                try:
                    found: Any = self.client.parse_response(connection, "EVALSHA")
                except ResponseError as exc:
                    found = exc
            except kombu(self).connection_errors:
                connection.disconnect()  # reconnects on the next poll
                raise
            self._waiting_without_bulk = False
            handed = RUNNERS.take_handed()
            for item in handed:  # what runners must not run, first: taken before
                self._take(item, QUEUE)
            try:
                taken = self._taken(found)
            except ResponseError as exc:  # the take writes: Redis out of memory refuses it
                self._refused(exc)
                if handed:
                    return True
                raise virtual.Empty() from exc
            if taken is None:
                if handed:
                    return True
                raise virtual.Empty()
            self._take(taken, QUEUE)
            return True
        finally:
            self._in_poll = None
            kombu(self)._flush_brpop_reauth()

    def _poll_error(self, type: str, **options: Any) -> None:
        if type == "BRPOP" and self._taking:
            # Two replies are pending (the wait's and the take's): both are read, and
            # a message the take recorded is delivered, never left behind unread.
            with contextlib.suppress(virtual.Empty):
                self._brpop_read(**options)
            return
        super()._poll_error(type, **options)  # type: ignore[misc]

    def _taken(self, found: Any) -> Taken | None:
        """What the take sent ahead found; taken again here if Redis did not know the
        script yet (loaded by this take), or if it could not take bulk work and this
        channel now may (its bulk share freed meanwhile)."""
        if isinstance(found, NoScriptError):
            return self._take_now(bulk=self._bulk_allowed())
        if isinstance(found, ResponseError):
            raise found
        taken = lanes.taken(found)
        if taken is None and not self._taking_bulk and self._bulk_allowed():
            return self._take_now(bulk=True)
        return taken

    def _take_now(self, *, bulk: bool) -> Taken | None:
        return take(
            self._create_client(),
            bulk=bulk,
            interactive=self._taking_interactive,
            unacked_index=self.unacked_index_key,
            unacked=self.unacked_key,
            taker=TAKER.key,
            taker_ttl=self._taker_ttl,
        )

    @property
    def _taker_ttl(self) -> int:
        """How long this process's set of taken messages lives unless it takes again: a
        message is held at most the visibility timeout, then kombu returns it."""
        return max(60, 2 * int(kombu(self).visibility_timeout))

    def _recover_unanswered_takes(self) -> None:
        """Return to their lanes the messages this process took but never received.

        Redis runs a take and records its message as this process's before it answers;
        if it stops right then (a restart: the replies of its last moment are never
        sent), the message is unacknowledged in Redis and in no worker's hands, and
        kombu would return it only after the visibility timeout. A channel's first take
        (at start, and after every reconnect) returns such messages first: those in this
        process's set that it did not receive. One received and still running is left
        alone; the request's lease would keep a second run of it from starting anyway.
        """
        client = self._create_client()
        try:
            return_unanswered(
                client,
                kombu(self.qos),
                taker=TAKER.key,
                unacked=self.unacked_key,
                held=TAKER.received | self.claimed,
            )
        except RedisError as exc:  # tried again at the next take
            logger.debug("Could not look for unanswered takes: %s", exc)
            return
        self._recovered = True

    def _take(self, claimed: Taken, queue: str) -> None:
        """Deliver a claimed item, or drop it if it is not a message."""
        try:
            message = loads(bytes_to_str(claimed.item))
        except UNREADABLE as exc:
            dropped(f"not JSON: {exc!r}")
            self._forget(claimed.tag)
            return
        if not is_envelope(message):
            dropped(f"not a message envelope: {shows(message)}")
            self._forget(claimed.tag)
            return
        if claimed.tag is None:
            self.connection._deliver(message, queue)
            return
        self.claimed.add(claimed.tag)
        if claimed.group is not None:
            self._transport.bulk.add(claimed.tag)
        try:
            self.connection._deliver(message, queue)
        except Exception as exc:
            if claimed.tag not in self.claimed:  # kombu took it: its QoS deals with it
                raise
            # kombu could not even build a message of it (a body that is not base64, say):
            # it would fail the same way on every redelivery, stopping a worker each time.
            dropped(f"kombu cannot read it: {exc!r}")
            self._forget(claimed.tag)
            return
        except BaseException:
            self.claimed.discard(claimed.tag)  # recorded: back after the visibility timeout
            raise
        if claimed.tag in self.claimed:  # taken without an ack to wait for
            self._forget(claimed.tag)

    def bulk_share_freed(self) -> None:
        """A bulk message ended (from a task thread): wake this channel if it waits without bulk."""
        if self._waiting_without_bulk and self._own_bell:
            self._waiting_without_bulk = False
            lanes.wake(self._create_client(), self._own_bell)

    def _refused(self, exc: ResponseError) -> None:
        """Use kombu's BRPOP for a while: Redis refuses the take's writes (out of memory)."""
        self._inbox_off_until = time.monotonic() + _INBOX_OFF_SECONDS
        self._taking = False
        logger.warning(
            "Redis refused a take (%s); popping messages for %.0fs", exc, _INBOX_OFF_SECONDS
        )

    def _forget(self, tag: str | None) -> None:
        if tag is not None:
            self.claimed.discard(tag)
            self._transport.bulk.discard(tag)
            kombu(self.qos).forget(tag)

    def sweep_inboxes(self) -> None:
        """Return what earlier workers left in their inboxes to the lanes."""
        client = self._create_client()
        silence = abandonment_delay(kombu(self).visibility_timeout)
        sweep(client, self._return_item, abandoned_after=silence)

    def _return_item(self, item: bytes, pipe: Any) -> None:
        try:
            message = loads(bytes_to_str(item))
            info = message["properties"]["delivery_info"]
            exchange, routing_key = info["exchange"], info["routing_key"]
        except (*UNREADABLE, ValueError, TypeError, KeyError) as exc:
            dropped(f"not a message envelope ({exc!r}): {shows(item)}")
            return
        self._do_restore_message(message, exchange, routing_key, pipe)

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        """Put a message that came back into its own lane (kombu's restore, lane-aware).

        kombu calls this for every message it restores: unacknowledged past the
        visibility timeout, or prefetched by a worker that shuts down. A task message of
        eksops names its lane in its routing key; others go where kombu puts them.
        """
        if routing_key != QUEUE and lanes.group_of(routing_key) is None:
            super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[misc]
            return
        with contextlib.suppress(KeyError, TypeError):
            payload["headers"]["redelivered"] = True
            payload["properties"]["delivery_info"]["redelivered"] = True
        weight = (payload.get("properties") or {}).get("priority") or 1
        lanes.requeue(pipe, dumps(payload), routing_key, int(weight))


class Transport(redis.Transport):
    """The Redis transport with :class:`Channel`, and envelopes checked before delivery."""

    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimed: set[str] = set()
        # Delivery tags of the bulk messages this worker holds (until acked or rejected).
        self.bulk: set[str] = set()

    def _deliver(self, message: Any, queue: str | None) -> Any:
        if not is_envelope(message):
            dropped(f"not a message envelope: {shows(message)}")
            return None
        return super()._deliver(message, queue)


class SentinelChannel(Channel, redis.SentinelChannel):
    """:class:`Channel` on the master that kombu's Sentinel channel finds (and re-finds).

    kombu's Sentinel channel only decides where the connections go; everything the
    lanes do (take, requeue, sweep) runs through the same connections, so on the
    current master, and a demoted master's connection error is handled like any broker
    outage.
    """

    # Sentinel's own options (master_name...) and the lanes' share.
    from_transport_options = (*redis.SentinelChannel.from_transport_options, "interactive_share")


class SentinelTransport(Transport, redis.SentinelTransport):
    """:class:`Transport` through Redis Sentinel (``sentinel://`` broker URLs)."""

    Channel = SentinelChannel
    default_port = redis.SentinelTransport.default_port
