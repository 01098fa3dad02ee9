"""Object storage with one cluster-wide resourceVersion and a bounded change history.

Every write goes through ``Store.commit``: it stamps the next resourceVersion (one
counter for all resources, as etcd's revision is), replaces the stored object, and
appends a ``Change`` (the new object and the one it replaced) to the history that
watches resume from and consistent list pages are rebuilt from. Listeners - the
controllers and the open watches - are told about each change synchronously.

Stored objects are immutable snapshots: writers build a new dict (sharing the
unchanged parts) instead of editing one in place, so a reply, a watch event and
the history can all hold the same object without copying it. That is what keeps
100,000 idle Jobs cheap, and a snapshot at an older resourceVersion exact.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
Key = tuple[str, str]
RESOURCES = ("namespaces", "jobs", "pods", "events")
INITIAL_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
DEFAULT_HISTORY = 50_000


_last_stamp: list[Any] = [None, ""]


def rfc3339(epoch: float) -> str:
    """``metav1.Time`` serialisation: whole seconds, UTC, ``Z`` (cached per second)."""
    second = int(epoch // 1)
    if _last_stamp[0] != second:
        _last_stamp[0] = second
        _last_stamp[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    text: str = _last_stamp[1]
    return text


def rfc3339_micro(epoch: float) -> str:
    """``metav1.MicroTime``: microseconds, UTC, ``Z``."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{whole}.{int((epoch % 1) * 1_000_000):06d}Z"


def key_of(obj: JSON) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


@dataclass(slots=True)
class Change:
    """One committed write: what the history and every watch sees."""

    rv: int
    type: str
    resource: str
    obj: JSON
    prev: JSON | None
    encoded: bytes | None = field(default=None)
    """This change's JSON watch event line while it is fanned out to the watchers."""


class Expired(Exception):
    """A resourceVersion older than the history still held (410 Gone)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


Listener = Callable[[Change], None]


class Store:
    """All objects of one simulated cluster, by resource then (namespace, name)."""

    def __init__(self, history_size: int = DEFAULT_HISTORY) -> None:
        self.rv = 0
        self.tables: dict[str, dict[Key, JSON]] = {r: {} for r in RESOURCES}
        self.history: deque[Change] = deque(maxlen=max(1, history_size))
        self.compacted = 0
        """Watches and snapshots must start at or after this resourceVersion."""
        self.listeners: list[Listener] = []
        self._sorted: dict[str, list[Key] | None] = dict.fromkeys(RESOURCES)
        self.dirty = False
        """Set by every commit; the persister clears it when it saved."""
        self.lazy: dict[str, Callable[[], None]] = {}
        """Per resource, what writes the objects a controller holds back until read."""

    @staticmethod
    def new_uid() -> str:
        """A random (version 4) UUID, built without ``uuid.UUID``'s overhead."""
        raw = bytearray(os.urandom(16))
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    @property
    def current_rv(self) -> str:
        return str(self.rv)

    def flush(self, resource: str | None = None) -> None:
        """Write what is held back for ``resource`` (every resource when None).

        Called before anything reads that resource: a request, a watch, a save.
        """
        if resource is None:
            for write in list(self.lazy.values()):
                write()
            return
        pending = self.lazy.get(resource)
        if pending is not None:
            pending()

    def get(self, resource: str, namespace: str, name: str) -> JSON | None:
        return self.tables[resource].get((namespace, name))

    def keys(self, resource: str) -> list[Key]:
        """All keys of a resource in etcd key order (namespace, then name).

        Sorted once, then kept sorted by every write; do not write while iterating.
        """
        cached = self._sorted[resource]
        if cached is None:
            cached = sorted(self.tables[resource])
            self._sorted[resource] = cached
        return cached

    def items(self, resource: str, namespace: str | None = None) -> Iterator[JSON]:
        table = self.tables[resource]
        keys = self.keys(resource)
        if namespace is None:
            for key in keys:
                obj = table.get(key)
                if obj is not None:
                    yield obj
            return
        start = bisect.bisect_left(keys, (namespace, ""))
        for index in range(start, len(keys)):
            key = keys[index]
            if key[0] != namespace:
                break
            obj = table.get(key)
            if obj is not None:
                yield obj

    def count(self, resource: str) -> int:
        return len(self.tables[resource])

    def commit(self, resource: str, obj: JSON | None, *, key: Key | None = None) -> Change:
        """Store ``obj`` (None deletes ``key``) at the next resourceVersion and announce it.

        The new object gets a fresh ``metadata`` dict carrying the new version; the
        caller's dict is not modified.
        """
        table = self.tables[resource]
        rv = self.rv = self.rv + 1
        if obj is None:
            assert key is not None
            prev = table.pop(key)
            self._unsort(resource, key)
            gone = {**prev, "metadata": {**prev["metadata"], "resourceVersion": str(rv)}}
            change = Change(rv, "DELETED", resource, gone, prev)
        else:
            meta = obj["metadata"]
            key = (meta.get("namespace") or "", meta["name"])
            stamped = {**obj, "metadata": {**meta, "resourceVersion": str(rv)}}
            old = table.get(key)
            table[key] = stamped
            if old is None:
                keys = self._sorted[resource]
                if keys is not None:
                    bisect.insort(keys, key)
                change = Change(rv, "ADDED", resource, stamped, None)
            else:
                change = Change(rv, "MODIFIED", resource, stamped, old)
        self.history.append(change)
        self.dirty = True
        for listener in self.listeners:
            listener(change)
        return change

    def _unsort(self, resource: str, key: Key) -> None:
        keys = self._sorted[resource]
        if keys is not None:
            index = bisect.bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                del keys[index]
            else:
                self._sorted[resource] = None

    def load(self, resource: str, obj: JSON) -> None:
        """Put a restored object back without a change (used at start-up only)."""
        self.tables[resource][key_of(obj)] = obj
        self._sorted[resource] = None

    # --- history -----------------------------------------------------------------

    def oldest_resumable(self) -> int:
        """The smallest resourceVersion a watch may resume from."""
        if self.history:
            return max(self.compacted, self.history[0].rv - 1)
        return max(self.compacted, self.rv)

    def compact(self) -> None:
        """Forget the history: resuming from any older version is now 410 Gone."""
        self.history.clear()
        self.compacted = self.rv

    def changes_since(self, rv: int) -> Iterable[Change]:
        """Changes after ``rv`` in order; raises Expired if some were forgotten."""
        oldest = self.oldest_resumable()
        if rv < oldest:
            raise Expired(rv, oldest)
        if rv >= self.rv:
            return ()
        history = self.history
        low, high = 0, len(history)
        while low < high:
            middle = (low + high) // 2
            if history[middle].rv <= rv:
                low = middle + 1
            else:
                high = middle
        return [history[i] for i in range(low, len(history))]

    def snapshot_overrides(self, resource: str, rv: int) -> dict[Key, JSON | None]:
        """Objects of ``resource`` as they were at ``rv`` where they changed since."""
        overrides: dict[Key, JSON | None] = {}
        for change in reversed(list(self.changes_since(rv))):
            if change.resource == resource:
                overrides[key_of(change.obj)] = change.prev
        return overrides
