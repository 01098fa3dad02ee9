"""``?wait=SECONDS``: hold an HTTP request until its operation ends, without a thread.

A waiting caller is a coroutine. It subscribes to its request's channel through the
process's one :class:`~producer.notify.Notifier` (the worker, or a canceller, publishes
there in the same step that stores the end), reads the status once off the event
loop, then sleeps on an event the notifier's thread sets: it answers the moment the
outcome exists, with one read. It reads again at least every second as well (a publish
lost with a broken connection), and to notice a caller that has gone, whose slot and
subscription are then freed. How many callers may wait at once is bounded by
``GATEWAY_MAX_WAITING``; past it, a caller gets the current status at once (so a 202
to poll) rather than queueing for a slot, which keeps the gateway responsive under a
burst of waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread

from producer.notify import Subscription
from worker import events
from worker.contracts import RequestStatus

logger = logging.getLogger(__name__)

#: How long a waiter trusts the publish of a request's end before it reads again anyway.
_REREAD_SECONDS = 1.0


@dataclass(frozen=True)
class WaitFor:
    """``?wait``: how long the caller will wait, and how to tell it has gone away."""

    seconds: float
    disconnected: Callable[[], Awaitable[bool]]


class Waiter:
    """Waits for request statuses for callers that asked to; bounded in time and number."""

    def __init__(
        self,
        read: Callable[[str], RequestStatus],
        subscribe: Callable[[str], Subscription],
        *,
        max_seconds: float,
        max_waiting: int,
    ) -> None:
        self._read = read
        self._subscribe = subscribe
        self.max_seconds = max_seconds
        self.max_waiting = max_waiting
        self.waiting = 0

    async def read(self, request_id: str) -> RequestStatus:
        """Return the status of ``request_id`` (one Redis read, off the event loop)."""
        return await anyio.to_thread.run_sync(self._read, request_id)

    async def wait(
        self,
        request_id: str,
        seconds: float,
        *,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> RequestStatus:
        """Return the status once it is final, or when ``seconds`` (capped) have passed.

        Also as soon as ``disconnected`` says the caller has gone: its slot is freed
        within a second rather than held until the deadline.
        """
        seconds = min(seconds, self.max_seconds)
        if seconds <= 0:
            return await self.read(request_id)
        if self.waiting >= self.max_waiting:
            logger.warning(
                "Not waiting: %d requests are waiting already (GATEWAY_MAX_WAITING)", self.waiting
            )
            return await self.read(request_id)
        self.waiting += 1
        try:
            return await self._wait(request_id, time.monotonic() + seconds, disconnected)
        finally:
            self.waiting -= 1

    async def _wait(
        self,
        request_id: str,
        deadline: float,
        disconnected: Callable[[], Awaitable[bool]] | None,
    ) -> RequestStatus:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        subscription = await anyio.to_thread.run_sync(
            self._subscribe, events.request_channel(request_id)
        )

        def wake() -> None:  # from the notifier's thread
            loop.call_soon_threadsafe(woken.set)

        subscription.on_wake(wake)
        try:
            while True:
                status = await self.read(request_id)
                remaining = deadline - time.monotonic()
                if status.state.is_terminal or remaining <= 0:
                    return status
                with anyio.move_on_after(min(remaining, _REREAD_SECONDS)):
                    await woken.wait()
                woken.clear()
                if disconnected is not None and await disconnected():
                    logger.info("Caller went away; no longer waiting for %s", request_id)
                    return status
        finally:
            subscription.close()
