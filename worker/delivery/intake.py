"""A runner's intake: interactive messages taken by the thread that runs them.

An interactive runner (``worker.runners``) is a thread of the worker that takes single
requests from the interactive lane and runs them itself, without Celery's consumer and
pool in between: the message taken, decoded and run in the one thread it arrived in.
Its :class:`Intake` takes the way the consumer's channel does (``worker.delivery.
transport``): it waits on the interactive bell with the take sent behind the wait, on
the same connection, so waking and taking cost one round trip; the take pops the
message and records it as unacknowledged in one step, so a message is always in its
lane or recorded. A message is acknowledged once its request ran (:meth:`Intake.ack`);
a runner killed before that leaves it recorded, and kombu returns it to its lane after
the visibility timeout, exactly as for a message Celery's consumer took.

Each intake records its takes in a set of its own (``lanes.taken_key``): a take Redis
ran but never answered (it stopped right then) is found there after the next
connection error and returned to its lane at once; no other thread takes for that set,
so nothing it returns is in anyone's hands.

A message a runner must not run (it has an ETA or an expiry, it was revoked, it is not
an operation's task, or its body cannot be decoded: whatever ``runnable`` refuses) is
handed to Celery's consumer, which delivers it as if it had taken it itself (see
:class:`~worker.delivery.transport.Runners`); an item that is not a message is dropped,
as the consumer drops it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kombu.serialization import prepare_accept_content
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError, ResponseError

from worker.delivery import lanes, transport
from worker.delivery.envelope import is_envelope
from worker.delivery.lanes import Taken
from worker.delivery.transport import UNREADABLE, Channel, dropped, kombu, return_unanswered, shows
from worker.records import read_replies

logger = logging.getLogger(__name__)

#: How long a take's replies may take once the wait is over (a Redis under load).
_REPLY_SECONDS = 10.0


class TakeRefused(Exception):
    """Redis refused a take's writes (out of memory): nothing was taken."""


#: Given a take's note, the commands to send behind the take (see :meth:`Intake.take`).
Behind = Callable[[lanes.Note], Sequence[tuple[Any, ...]]]


@dataclass(frozen=True)
class Took:
    """What one take brought: the message to run (None: nothing, or not one to run
    here), the delivery tag of whatever it took, the replies of what was behind it, and
    a message a runner must not run, to give to Celery's consumer (:meth:`Intake.hand_over`)
    once what was started behind the take is given back."""

    delivery: Delivery | None
    tag: str | None
    behind: list[Any]
    refused: Taken | None = None


@dataclass(frozen=True)
class Delivery:
    """A message an intake took: its delivery tag, headers and decoded body."""

    tag: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: Any  # Celery's protocol 2: [args, kwargs, embed]

    @property
    def task_name(self) -> str:
        return str(self.headers.get("task") or "")

    @property
    def request_id(self) -> str:
        return str(self.headers.get("id") or "")

    @property
    def kwargs(self) -> dict[str, Any] | None:
        """The task's keyword arguments; None if the body does not carry them alone."""
        body = self.body
        if not isinstance(body, list | tuple) or len(body) < 2:
            return None
        args, kwargs = body[0], body[1]
        if args or not isinstance(kwargs, dict):
            return None
        return kwargs


class Intake:
    """Takes interactive messages for one runner thread; see the module docstring.

    ``connection``: a kombu connection of the worker's transport (its settings, TLS and
    Sentinel included). ``accept``: the serializers or content types the worker accepts
    (Celery's ``accept_content``). ``runnable``: whether a runner may run a decoded message.
    ``tasks``: the tasks it may run, which a take notes for the commands behind it.
    """

    def __init__(
        self,
        connection: Any,
        *,
        accept: Iterable[str],
        runnable: Callable[[Delivery], bool],
        tasks: Iterable[str] = (),
    ) -> None:
        self._connection = connection
        self._accept = prepare_accept_content(list(accept))
        self._runnable = runnable
        self._tasks = tuple(sorted(tasks))
        self._channel: Any = None
        name = uuid.uuid4().hex[:12]
        self.taker = f"{transport.TAKER.key}:runner-{name}"
        self._bell = lanes.worker_bell(f"runner-{name}")
        self._note = f"{self.taker}:note"
        self._recover = False

    @property
    def channel(self) -> Channel:
        """The transport channel this intake takes through (its keys, client, QoS)."""
        if self._channel is None:
            channel = self._connection.channel()
            if not isinstance(channel, Channel):
                raise TypeError("an intake needs the worker's transport (worker.delivery)")
            if channel.global_keyprefix:
                raise ValueError("an intake cannot take from lanes under a global key prefix")
            self._channel = channel
        channel = self._channel
        assert isinstance(channel, Channel)
        return channel

    def _client(self) -> Any:
        return kombu(self.channel)._create_client()

    # --- taking ----------------------------------------------------------------------

    def take(
        self,
        wait: float,
        behind: Behind | None = None,
        *,
        unanswered: Callable[[str], None] | None = None,
    ) -> Took:
        """Wait up to ``wait`` seconds for an interactive message; return what came.

        ``behind``: commands to send behind the take, on the same connection (Redis
        runs them right after it): given this take's :class:`~worker.delivery.lanes.
        Note`, it returns them; their replies come back with the take. The delivery is
        None when nothing came, or what came was dropped or handed to Celery's consumer.
        Redis errors are raised; after one, the next take first returns to their lane
        the messages an unanswered take of this intake recorded, calling
        ``unanswered`` with each delivery tag before its message goes back.
        """
        client = self._client()
        if self._recover:
            self._return_unanswered(client, unanswered)
        note = lanes.Note(self._note, uuid.uuid4().hex, self._tasks)
        commands = list(behind(note)) if behind is not None else []
        try:
            found, replies = self._wait_and_take(client, wait, note, commands)
            if isinstance(found, NoScriptError):
                # Redis did not know the take (it restarted): the commands behind it ran
                # without a take before them, and found no note of this take.
                taken = self._take_now(client)
            elif isinstance(found, ResponseError):
                raise TakeRefused(str(found))
            else:
                taken = lanes.taken(found)
            if taken is None:
                return Took(None, None, replies)
            delivery, refused = self._delivered(client, taken)
        except TakeRefused:
            raise
        except BaseException:
            # Whatever this take took is in this intake's set, in no one's hands: the
            # next take returns it to its lane first.
            self._recover = True
            raise
        return Took(delivery, taken.tag, replies, refused=taken if refused else None)

    def _wait_and_take(
        self, client: Any, wait: float, note: lanes.Note, behind: list[tuple[Any, ...]]
    ) -> tuple[Any, list[Any]]:
        """Send the wait, the take and ``behind`` at once; return the take's reply (an
        error reply as its exception) and the replies of ``behind``."""
        ahead = lanes.take_command(
            bulk=False,
            unacked_index=self.channel.unacked_index_key,
            unacked=self.channel.unacked_key,
            taker=self.taker,
            taker_ttl=self.channel._taker_ttl,
            note=note,
        )
        pool = client.connection_pool
        connection = pool.get_connection()
        wait_for = ("BRPOP", lanes.INTERACTIVE_BELL, self._bell, max(1, round(wait)))
        try:
            connection.send_packed_command(connection.pack_commands([wait_for, ahead, *behind]))
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        # Every reply is read, whatever the first says: the take ran either way.
        count = 2 + len(behind)
        within = [wait + _REPLY_SECONDS] + [_REPLY_SECONDS] * (count - 1)
        replies = read_replies(pool, connection, count, within=within)
        if isinstance(replies[0], ResponseError):
            logger.warning("Waiting on the interactive bell failed: %s", replies[0])
        return replies[1], replies[2:]

    def _take_now(self, client: Any) -> Taken | None:
        return lanes.take(
            client,
            bulk=False,
            unacked_index=self.channel.unacked_index_key,
            unacked=self.channel.unacked_key,
            taker=self.taker,
            taker_ttl=self.channel._taker_ttl,
        )

    def _return_unanswered(self, client: Any, unanswered: Callable[[str], None] | None) -> None:
        return_unanswered(
            client,
            kombu(self.channel.qos),
            taker=self.taker,
            unacked=self.channel.unacked_key,
            held=set(),  # between takes, a runner holds nothing
            before_return=unanswered,
        )
        self._recover = False

    def _delivered(self, client: Any, taken: Taken) -> tuple[Delivery | None, bool]:
        """The message to run, or None and whether it is one to hand to Celery's
        consumer (else it was dropped: not a message)."""
        try:
            payload = loads(bytes_to_str(taken.item))
        except UNREADABLE as exc:
            dropped(f"not JSON: {exc!r}")
            self._forget(client, taken.tag)
            return None, False
        if taken.tag is None or not is_envelope(payload):
            dropped(f"not a message envelope: {shows(payload)}")
            self._forget(client, taken.tag)
            return None, False
        try:
            message = self.channel.Message(payload, channel=self.channel, accept=self._accept)
            delivery = Delivery(
                taken.tag,
                dict(message.headers or {}),
                dict(message.properties or {}),
                message.decode(),
            )
        except Exception as exc:  # Celery's consumer reports it (and rejects it) its way
            logger.debug("Handing message %s to Celery's consumer: %r", taken.tag, exc)
            return None, True
        if not self._runnable(delivery):
            return None, True
        return delivery, False

    def hand_over(self, taken: Taken) -> None:
        """Give a message a runner must not run to Celery's consumer: it leaves this
        intake's set (its recovery must not return it) and stays unacknowledged until
        Celery acks it."""
        self._client().srem(self.taker, taken.tag)
        transport.RUNNERS.hand_over(self._client, taken)

    def lost(self) -> None:
        """What this intake took was dropped on the runner's side (an error after the
        take): its next take first returns the messages of its set to their lanes."""
        self._recover = True

    def put_back(self, tag: str) -> None:
        """Return a message this intake took to its lane, unrun (the worker stops)."""
        client = self._client()
        kombu(self.channel.qos).restore_by_tag(tag, client)
        client.srem(self.taker, tag)

    def _forget(self, client: Any, tag: str | None) -> None:
        if tag is not None:
            self._ack(client, tag)

    def _ack(self, client: Any, tag: str) -> None:
        lanes.ack(
            client,
            tag,
            unacked_index=self.channel.unacked_index_key,
            unacked=self.channel.unacked_key,
            taker=self.taker,
        )

    # --- after the run -----------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a message whose request ran: it is forgotten in Redis."""
        self._ack(self._client(), delivery.tag)

    def busy(self) -> None:
        """This intake's runner starts a request (see ``Runners``)."""
        transport.RUNNERS.busy(self._client)

    def free(self) -> None:
        """This intake's runner is free to take again."""
        transport.RUNNERS.free_one(self._client)

    def wake(self) -> None:
        """End this intake's wait now (from another thread: a runner stopping)."""
        lanes.wake(self._client(), self._bell)

    def close(self) -> None:
        """Close the connection; the consumer gets back what was handed to it and not
        delivered yet when the worker stops (see ``Runners.give_back``)."""
        try:
            if self._channel is not None:
                transport.RUNNERS.give_back(self._client(), kombu(self._channel.qos))
        finally:
            self._connection.release()
