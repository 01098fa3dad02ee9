"""The one way tests wait for something to happen: poll a check until it holds.

Sleeps are for letting time pass on purpose (a token to age, a window in which
nothing may happen); waiting for a state is always :func:`wait_until`, which returns
as soon as the state is reached and fails with what was last seen when it is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    describe: Callable[[], object] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy and return that; fail after ``timeout``.

    ``describe`` says what was seen instead, for the failure message (by default the
    last value ``check`` returned). ``check`` may raise AssertionError to stop at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = describe() if describe is not None else value
            raise AssertionError(f"condition not met within {timeout}s; last seen: {seen!r}")
        time.sleep(interval)
