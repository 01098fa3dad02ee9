"""Waking waiters the moment something they wait for is recorded: Redis pub/sub, shared.

Workers publish on a channel per request (its outcome stored, ``worker.events``) and
the job tracker on a channel per Job (a phase recorded, ``worker.jobrecords``), in the
same step as the write. A waiter subscribes *before* it reads the current state, then
waits for a message, so nothing can slip between its read and its wait; a message on
these channels only means "read again" (the state itself is read from the record).
Celery's result backend publishes each stored result meta on its key's channel, the
stored bytes themselves: ``EksOps.result`` listens there and takes a final outcome
from the message (:meth:`Subscription.take_message`), as Celery's own result
consumer does, without a read. One
:class:`Notifier` per process holds one pub/sub connection for all its waiters, in a
thread of its own: a thousand waiting gateway callers cost one connection. If that
connection breaks, every waiter is woken to read again, and the notifier reconnects.

A thread that blocks until it is woken (the library's ``wait`` and ``result``) listens
on a connection of its own instead (:class:`Listener`, a few per process, reused): it
reads the publish itself, with no hand-off from the notifier's thread (a thread
switch, which on a VM whose idle vCPU must be woken first costs a good part of a
millisecond), and its subscription is confirmed before it reads, so no publish can
fall between the two.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis as redis_lib

logger = logging.getLogger(__name__)

Wake = Callable[[], None]


class Subscription:
    """One waiter's interest in one channel; :meth:`wait` returns when woken."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self.channel = channel
        self._notifier = notifier
        self._event = threading.Event()
        self._wakes: list[Wake] = [self._event.set]
        self._message: bytes | None = None

    def on_wake(self, wake: Wake) -> None:
        """Also call ``wake`` (from the notifier's thread) when woken."""
        self._wakes.append(wake)

    def wake(self, message: bytes | None = None) -> None:
        """Wake the waiter; ``message``: what was published, kept for :meth:`take_message`."""
        self._message = message
        for wake in self._wakes:
            try:
                wake()
            except Exception:  # a waiter's callback must not stop the notifier
                logger.exception("A waiter's wake-up failed")

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds to be woken; True if woken. Re-arms itself."""
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken

    def take_message(self) -> bytes | None:
        """Return what the last wake-up's publish carried (None: a wake-up without one)."""
        message, self._message = self._message, None
        return message

    def close(self) -> None:
        """Stop listening."""
        self._notifier.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Notifier:
    """One pub/sub connection shared by every waiter of this process."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Subscription]] = {}
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closed = False

    def subscribe(self, channel: str) -> Subscription:
        """Listen on ``channel``; the subscription is active when this returns."""
        subscription = Subscription(self, channel)
        with self._lock:
            self._start()
            first = channel not in self._subscribers
            self._subscribers.setdefault(channel, []).append(subscription)
        if first:
            self._ready.wait(5)
            try:
                self._pubsub.subscribe(channel)
            except (redis_lib.RedisError, OSError, AttributeError):
                subscription.wake()  # cannot listen: the waiter reads again and polls
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription``; its channel too, once nobody listens on it."""
        with self._lock:
            listeners = self._subscribers.get(subscription.channel, [])
            if subscription in listeners:
                listeners.remove(subscription)
            if listeners:
                return
            self._subscribers.pop(subscription.channel, None)
        try:
            if self._pubsub is not None:
                self._pubsub.unsubscribe(subscription.channel)
        except (redis_lib.RedisError, OSError):
            pass  # the connection is being rebuilt; the channel is not re-subscribed

    def close(self) -> None:
        """Stop the listening thread."""
        self._closed = True
        if self._pubsub is not None:
            with contextlib.suppress(redis_lib.RedisError, OSError):
                self._pubsub.close()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._listen, name="eksops-notify", daemon=True)
            self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                with self._lock:
                    channels = list(self._subscribers)
                if channels:
                    self._pubsub.subscribe(*channels)
                else:
                    self._pubsub.subscribe("eksops:notify:-")  # a connection to listen on
                self._ready.set()
                self._wake_all()  # whatever was published while we were away: read again
                while not self._closed:
                    message = self._pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._deliver(message["channel"], message.get("data"))
            except Exception as exc:  # the listener must outlive any error
                # close() racing a read makes redis-py raise what it happens to raise
                # (AttributeError, RuntimeError...): the notifier is done, quietly.
                if self._closed:
                    return
                logger.warning("Lost the notification connection (%s); reconnecting", exc)
                self._ready.clear()
                self._wake_all()
                threading.Event().wait(0.5)

    def _deliver(self, channel: bytes | str, data: Any = None) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        with self._lock:
            listeners = list(self._subscribers.get(name, []))
        message = data.encode() if isinstance(data, str) else data
        for subscription in listeners:
            subscription.wake(message if isinstance(message, bytes) else None)

    def _wake_all(self) -> None:
        with self._lock:
            everyone = [s for listeners in self._subscribers.values() for s in listeners]
        for subscription in everyone:
            subscription.wake()


# How long a waiter waits for Redis to confirm its subscription before it reads anyway
# (and polls: its waits then sleep out their timeouts).
_CONFIRM_SECONDS = 5.0
#: Most connections of its own a process's waiters listen on at once; waiters beyond
#: that many share the notifier's (as a gateway's thousand do).
OWN_CONNECTIONS_MAX = 16

Shared = Callable[[str], Subscription]


class Listener:
    """Pub/sub connections that blocking waiters read themselves, kept for the next ones.

    Each waiter takes an idle connection (or opens one, up to
    :data:`OWN_CONNECTIONS_MAX` in use), and gives it back when its wait ends; a waiter
    beyond that many listens through ``shared`` (the :class:`Notifier`). So a process
    holds as many of these connections as it ever had waiters at once, at most that
    many, whatever number of threads come and go.
    """

    def __init__(self, redis: Any, *, shared: Shared, most: int = OWN_CONNECTIONS_MAX) -> None:
        self._redis = redis
        self._shared = shared
        self._most = most
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._in_use = 0
        self._closed = False

    def subscribe(self, channel: str) -> OwnSubscription | Subscription:
        """Listen on ``channel`` for the calling thread; active (confirmed) when this
        returns, or, if Redis cannot confirm it, a subscription whose waits only sleep."""
        with self._lock:
            pubsub = self._idle.pop() if self._idle else None
            if pubsub is None and self._in_use < self._most and not self._closed:
                pubsub = self._redis.pubsub()
            if pubsub is not None:
                self._in_use += 1
        if pubsub is None:
            return self._shared(channel)
        return OwnSubscription(self, pubsub, channel)

    @property
    def connections(self) -> int:
        """Return how many connections of its own this listener holds (idle or in use)."""
        with self._lock:
            return self._in_use + len(self._idle)

    def _give_back(self, pubsub: Any, *, usable: bool) -> None:
        """Take back a waiter's connection: idle for the next one, or closed if it failed."""
        with self._lock:
            self._in_use -= 1
            keep = usable and not self._closed
            if keep:
                self._idle.append(pubsub)
        if not keep:
            with contextlib.suppress(redis_lib.RedisError, OSError):
                pubsub.close()

    def close(self) -> None:
        """Close the idle connections; those in use close when their waits end."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for pubsub in idle:
            with contextlib.suppress(redis_lib.RedisError, OSError):
                pubsub.close()


class OwnSubscription:
    """A subscription read by the thread that waits (see :class:`Listener`).

    Same use as :class:`Subscription`: :meth:`wait`, :meth:`take_message`, a context.
    """

    def __init__(self, listener: Listener, pubsub: Any, channel: str) -> None:
        self.channel = channel
        self._listener = listener
        self._pubsub: Any = pubsub
        self._message: bytes | None = None
        try:
            pubsub.subscribe(channel)
            confirmed = self._read(_CONFIRM_SECONDS, kind="subscribe")
        except (redis_lib.RedisError, OSError) as exc:
            logger.debug("Could not subscribe to %s (%s); polling", channel, exc)
            confirmed = False
        if not confirmed:
            self._broken()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a publish; True if one came (or the
        connection failed: read again)."""
        if self._pubsub is None:
            time.sleep(max(0.0, timeout))
            return False
        try:
            return self._read(timeout, kind="message")
        except (redis_lib.RedisError, OSError) as exc:
            logger.debug("Lost the connection listening on %s (%s)", self.channel, exc)
            self._broken()
            return True

    def take_message(self) -> bytes | None:
        """Return what the last publish carried (None: woken without one)."""
        message, self._message = self._message, None
        return message

    def close(self) -> None:
        """Stop listening; the connection goes back to the listener for the next wait."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return
        usable = True
        try:
            pubsub.unsubscribe(self.channel)
        except (redis_lib.RedisError, OSError):
            usable = False
        self._listener._give_back(pubsub, usable=usable)

    def __enter__(self) -> OwnSubscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _read(self, timeout: float, *, kind: str) -> bool:
        """Read until a ``kind`` message of this channel arrives (True) or ``timeout``
        passes; what the connection's earlier waiters left (their unsubscribe, a late
        publish) is skipped."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=remaining)
            if message is None or message.get("type") != kind:
                continue
            channel = message.get("channel")
            if (channel.decode() if isinstance(channel, bytes) else channel) != self.channel:
                continue
            data = message.get("data")
            self._message = data.encode() if isinstance(data, str) else data
            if not isinstance(self._message, bytes):
                self._message = None
            return True
        return False

    def _broken(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            self._listener._give_back(pubsub, usable=False)
