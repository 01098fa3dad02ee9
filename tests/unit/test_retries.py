"""The retry policy: exponential with jitter, capped, and never under Retry-After."""

from __future__ import annotations

from worker.retries import RetryPolicy


def test_the_countdown_doubles_and_stays_within_half_to_full_ceiling() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_seconds=1.0, backoff_max_seconds=60.0)
    for retries, ceiling in enumerate((1, 2, 4, 8, 16)):
        assert policy.countdown(retries, rng=lambda: 0.0) == ceiling / 2
        assert policy.countdown(retries, rng=lambda: 1.0) == ceiling


def test_the_countdown_is_capped() -> None:
    policy = RetryPolicy(backoff_seconds=1.0, backoff_max_seconds=10.0)
    assert policy.countdown(20, rng=lambda: 1.0) == 10.0


def test_retry_after_is_never_undercut() -> None:
    policy = RetryPolicy(backoff_seconds=1.0, backoff_max_seconds=60.0)
    assert policy.countdown(0, retry_after=5.0, rng=lambda: 1.0) == 5.0
    assert policy.countdown(5, retry_after=0.5, rng=lambda: 0.0) == 16.0


def test_retries_count_the_attempts_after_the_first() -> None:
    assert RetryPolicy(max_attempts=5).max_retries == 4
