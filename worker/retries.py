"""The retry policy, declared once for every task.

Transient errors (429, 5xx, broken connections) are retried through Celery, so each
attempt is a new delivery whose RETRY state and error the poller sees. The countdown
grows exponentially with "equal jitter" (half fixed, half random: never an immediate
retry, yet a fleet of workers spreads out), is capped, and never undercuts a
``Retry-After`` the API sent. Permanent errors are never retried.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from worker.errors import EksOpsError
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


# The lines every execution logs as it fails, retries or gives up, said once for the
# single-request tasks and the chunks; each goes to the caller's logger.


def log_failure(logger: logging.Logger, name: str, exc: EksOpsError) -> None:
    """Log a request's permanent failure: code and the cluster's message."""
    logger.error("%s failed: %s %s: %s", name, exc.http_status, exc.code, exc.message, stacklevel=2)


def log_giving_up(logger: logging.Logger, name: str, attempts: int, exc: EksOpsError) -> None:
    """Log the last attempt of a transient failure."""
    logger.error(
        "%s failed after %d attempts, giving up: %s %s: %s",
        name,
        attempts,
        exc.http_status,
        exc.code,
        exc.message,
        stacklevel=2,
    )


def log_retry(
    logger: logging.Logger, attempt: int, policy: RetryPolicy, exc: EksOpsError, countdown: float
) -> None:
    """Log a transient failure that will be retried after ``countdown`` seconds."""
    logger.warning(
        "Attempt %d of %d failed: %s %s: %s; retrying in %.2fs",
        attempt,
        policy.max_attempts,
        exc.http_status,
        exc.code,
        exc.message,
        countdown,
        stacklevel=2,
    )
