"""The gateway's open event streams: a bound on how many, and the asyncio Redis they read.

One instance per gateway (``Gateway.event_streams``); ``GET /api/events`` enters it for
each stream and leaves it when the caller goes away (see ``producer.gateway.events``).
"""

from __future__ import annotations

from typing import Any


class EventStreams:
    """The gateway's open event streams: a bound on their number, and their Redis client."""

    def __init__(self, redis: Any, *, limit: int) -> None:
        self.redis = redis
        self.limit = limit
        self.open = 0

    def enter(self) -> bool:
        """Count one more stream; False when the limit is reached."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        """Count one stream less."""
        self.open -= 1
