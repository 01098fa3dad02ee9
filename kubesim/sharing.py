"""One object for parts that many stored objects have alike.

Stored objects are immutable snapshots (see ``kubesim.store``): nothing changes
one in place, so identical parts can be one object. Benchmarks create thousands
of Jobs from one manifest; without sharing, every Job and Pod carried its own copy
of the same pod template (containers, command, defaults) - about a third of the
memory per Job. Both caches are bounded and forget everything when full, which
only costs sharing, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")
_LIMIT = 1024


class ByContent(Generic[T]):
    """The first of equal JSON values (same keys in the same order) stands for all."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self._seen: dict[bytes, T] = {}
        self._limit = limit

    def intern(self, value: T) -> T:
        try:
            key = orjson.dumps(value)
        except TypeError:  # not plain JSON (a YAML set, say): keep it unshared
            return value
        found = self._seen.get(key)
        if found is not None:
            return found
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen[key] = value
        return value


class Derived(Generic[T]):
    """What ``build`` makes of an object, made once per object (by identity)."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self._made: dict[int, tuple[Any, T]] = {}
        self._limit = limit

    def get(self, source: Any, build: Callable[[Any], T]) -> T:
        found = self._made.get(id(source))
        if found is not None and found[0] is source:
            return found[1]
        if len(self._made) >= self._limit:
            self._made.clear()
        made = build(source)
        # the entry keeps ``source`` alive, so its id cannot be reused meanwhile
        self._made[id(source)] = (source, made)
        return made
