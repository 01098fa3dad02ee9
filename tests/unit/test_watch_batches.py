"""Watch events reach the tracker in lists of whatever has arrived, in order, errors last."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from worker.errors import Gone
from worker.tracking.watching import batched


def test_events_that_arrived_together_come_in_one_list_in_order() -> None:
    release = threading.Event()

    def events() -> Iterator[int]:
        yield 0
        release.wait(5)  # the rest arrive while the caller handles the first
        yield from range(1, 8)

    lists = batched(events(), most=5)
    assert next(lists) == [0]
    release.set()
    rest = list(lists)
    assert [item for batch in rest for item in batch] == list(range(1, 8))
    assert all(len(batch) <= 5 for batch in rest)


def test_an_error_comes_after_the_events_before_it() -> None:
    def events() -> Iterator[int]:
        yield 1
        yield 2
        raise Gone("too old resource version", 410, "Expired")

    seen: list[int] = []

    def drain() -> None:
        for batch in batched(events()):
            seen.extend(batch)

    with pytest.raises(Gone):
        drain()
    assert seen == [1, 2]


def test_a_caller_that_stops_early_stops_the_reader() -> None:
    produced: list[int] = []
    stopped = threading.Event()

    def events() -> Iterator[int]:
        try:
            for index in range(1_000_000):
                produced.append(index)
                yield index
        finally:
            stopped.set()

    lists = batched(events(), most=10, buffered=20)
    next(lists)
    lists.close()
    assert stopped.wait(5)
    assert len(produced) < 1_000
