"""The retry policy, declared once for every task.

Transient errors (429, 5xx, broken connections) are retried through Celery, so each
attempt is a new delivery whose RETRY state and error the poller sees. The countdown
grows exponentially with "equal jitter" (half fixed, half random: never an immediate
retry, yet a fleet of workers spreads out), is capped, and never undercuts a
``Retry-After`` the API sent. Permanent errors are never retried.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from worker.settings import WorkerSettings


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before running a failed request again."""

    max_attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RetryPolicy:
        """Return the policy configured by ``RETRY_*`` settings."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            backoff_seconds=settings.retry_backoff_seconds,
            backoff_max_seconds=settings.retry_backoff_max_seconds,
        )

    @property
    def max_retries(self) -> int:
        """Return the number of retries after the first attempt."""
        return self.max_attempts - 1

    def countdown(
        self,
        retries_done: int,
        retry_after: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Return the seconds to wait before retry number ``retries_done + 1``."""
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2.0**retries_done)
        delay = ceiling / 2 + rng() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return round(delay, 3)
