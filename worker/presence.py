"""Which workers are alive, answered from Redis in one read (no broadcast ping).

Each worker process announces itself every :data:`ANNOUNCE_SECONDS` in the sorted set
``eksops:workers`` (member: its Celery node name; score: Redis's clock, in seconds); a
worker heard from within :data:`LIVE_WITHIN_SECONDS` is live. A killed worker stops
announcing and drops out of the count within that window; its entry is trimmed after
:data:`FORGET_AFTER_SECONDS`. ``/health``'s ``workers`` field still counts the workers
answering a Celery ping (the seed's meaning); this is the cheap count the backlog views
and gauges use. Pure redis-py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WORKERS_KEY = "eksops:workers"
ANNOUNCE_SECONDS = 5.0
LIVE_WITHIN_SECONDS = 15.0
FORGET_AFTER_SECONDS = 3600.0


def _now(redis: Any) -> float:
    seconds, micros = redis.time()
    return float(seconds) + float(micros) / 1_000_000


def announce(redis: Any, name: str) -> None:
    """Record that worker ``name`` is alive now."""
    now = _now(redis)
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(WORKERS_KEY, {name: now})
    pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - FORGET_AFTER_SECONDS)
    pipe.execute()


def withdraw(redis: Any, name: str) -> None:
    """Forget worker ``name`` (it is shutting down)."""
    redis.zrem(WORKERS_KEY, name)


def live(redis: Any) -> int:
    """Return how many workers announced themselves within the live window."""
    return int(redis.zcount(WORKERS_KEY, _now(redis) - LIVE_WITHIN_SECONDS, "+inf"))


class Announcer:
    """A daemon thread announcing one worker until stopped."""

    def __init__(self, redis: Any, name: str, interval: float = ANNOUNCE_SECONDS) -> None:
        self._redis = redis
        self._name = name
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eksops-presence", daemon=True)

    def start(self) -> None:
        """Start announcing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop announcing and withdraw the worker."""
        self._stop.set()
        self._thread.join(timeout=self._interval)
        try:
            withdraw(self._redis, self._name)
        except RedisError as exc:
            logger.debug("Could not withdraw %s from the live workers: %s", self._name, exc)

    def _run(self) -> None:
        while True:
            try:
                announce(self._redis, self._name)
            except RedisError as exc:  # counted as gone until Redis answers again
                logger.debug("Could not announce %s: %s", self._name, exc)
            if self._stop.wait(self._interval):
                return
