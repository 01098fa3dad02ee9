"""``?wait=SECONDS``: hold an HTTP request until its operation ends, without a thread.

``EksOps.wait`` sleeps in the calling thread, so serving it from FastAPI's thread pool
would hold one thread per waiting caller (40 by default, shared with every other sync
call). Here a waiting caller is a coroutine: each poll is one short ``EksOps.status``
read in a worker thread, and between polls it sleeps on the event loop with the same
backoff as ``EksOps.wait`` (``WAIT_POLL_MIN_SECONDS`` doubling up to
``WAIT_POLL_MAX_SECONDS``). How many callers may wait at once is bounded by
``GATEWAY_MAX_WAITING``; past it, a caller gets the current status at once (so a
202 to poll) rather than queueing for a slot, which keeps the gateway responsive under
a burst of waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread

from worker.contracts import RequestStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitFor:
    """``?wait``: how long the caller will wait, and how to tell it has gone away."""

    seconds: float
    disconnected: Callable[[], Awaitable[bool]]


class Waiter:
    """Polls request statuses for callers that asked to wait; bounded in time and number."""

    def __init__(
        self,
        read: Callable[[str], RequestStatus],
        *,
        max_seconds: float,
        max_waiting: int,
        poll_min_seconds: float,
        poll_max_seconds: float,
    ) -> None:
        self._read = read
        self.max_seconds = max_seconds
        self.max_waiting = max_waiting
        self._poll_min = poll_min_seconds
        self._poll_max = poll_max_seconds
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

        Also as soon as ``disconnected`` says the caller has gone: its slot is freed at
        the next poll rather than held until the deadline.
        """
        seconds = min(seconds, self.max_seconds)
        status = await self.read(request_id)
        if status.state.is_terminal or seconds <= 0:
            return status
        if self.waiting >= self.max_waiting:
            logger.warning(
                "Not waiting: %d requests are waiting already (GATEWAY_MAX_WAITING)", self.waiting
            )
            return status
        self.waiting += 1
        try:
            return await self._poll(request_id, status, time.monotonic() + seconds, disconnected)
        finally:
            self.waiting -= 1

    async def _poll(
        self,
        request_id: str,
        status: RequestStatus,
        deadline: float,
        disconnected: Callable[[], Awaitable[bool]] | None,
    ) -> RequestStatus:
        delay = self._poll_min
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return status
            await anyio.sleep(min(delay, remaining))
            if disconnected is not None and await disconnected():
                logger.info("Caller went away; no longer waiting for %s", request_id)
                return status
            delay = min(delay * 2, self._poll_max)
            status = await self.read(request_id)
            if status.state.is_terminal:
                return status
