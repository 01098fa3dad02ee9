"""Watches: ``?watch=true`` and ``/watch/`` streams fed from the change history.

A watch starts where the client asks: with no or ``0`` resourceVersion, with
synthetic ``ADDED`` events for what exists now; with a version, with every change
after it from the history, or - when the history no longer reaches back that far -
a single ``ERROR`` event carrying the 410 ``Expired`` Status "too old resource
version: X (Y)", as the watch cache answers (``cacher/watch_cache_history.go``).
``sendInitialEvents=true`` ends the initial events with a ``BOOKMARK`` annotated
``k8s.io/initial-events-end``; ``allowWatchBookmarks`` adds a ``BOOKMARK`` every
``bookmark_interval`` seconds. Label and field selectors apply to both the old and
the new object, so an object leaving the selection is ``DELETED`` for that
watcher and one entering it ``ADDED`` (``cacher/cache_watcher.go``). Streams end at
``timeoutSeconds`` or the server's ``watch_timeout``.

Fan-out is cheap: each change is serialised once (``Change.encoded``) and appended
to each matching watcher's buffer; one writer task per watcher flushes whatever
has accumulated in a single write, so a burst of creates costs one socket write
per watcher per loop iteration, not per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from kubesim import statuses
from kubesim.calls import JSON
from kubesim.kinds import Kind
from kubesim.lists import object_view
from kubesim.options import ListOptions
from kubesim.selectors import Predicate
from kubesim.store import Change, Expired, Store

log = logging.getLogger(__name__)
Encoder = Callable[[str, JSON, bool], bytes]


_PREFIXES = {
    t: b'{"type":"' + t.encode() + b'","object":'
    for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
}


def plain_event(event_type: str, obj: JSON) -> bytes:
    prefix = _PREFIXES.get(event_type) or b'{"type":"' + event_type.encode() + b'","object":'
    return b"".join((prefix, orjson.dumps(obj), b"}\n"))


class Watcher:
    """One open watch: what it wants, and what it has not written yet."""

    def __init__(  # noqa: PLR0917 - keyword use at every call site
        self,
        kind: Kind,
        namespace: str,
        labels: Predicate,
        fields: Predicate,
        encode: Encoder | None,
        selective: bool,
    ) -> None:
        self.kind, self.namespace = kind, namespace
        self.labels, self.fields = labels, fields
        self.encode = encode
        self.selective = selective
        self.buffer: list[bytes] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.last_rv = 0
        self.first = True

    def _line(self, change: Change, event_type: str) -> bytes:
        if self.encode is not None:
            line = self.encode(event_type, object_view(self.kind, change.obj), self.first)
            self.first = False
            return line
        if self.kind.group == "events.k8s.io":
            return plain_event(event_type, object_view(self.kind, change.obj))
        if event_type == change.type:
            shared = change.encoded
            if shared is None:
                shared = change.encoded = plain_event(event_type, change.obj)
            return shared
        return plain_event(event_type, change.obj)

    def matches(self, obj: JSON) -> bool:
        return self.labels(obj) and self.fields(obj)

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        if self.namespace and (change.obj["metadata"].get("namespace") or "") != self.namespace:
            return
        event_type = change.type
        if self.selective:
            now_in = event_type != "DELETED" and self.matches(change.obj)
            was_in = change.prev is not None and self.matches(change.prev)
            if event_type == "DELETED":
                if not was_in:
                    return
            elif now_in and not was_in:
                event_type = "ADDED"
            elif was_in and not now_in:
                event_type = "DELETED"
            elif not now_in:
                return
        self.buffer.append(self._line(change, event_type))
        self.last_rv = change.rv
        self.wake.set()

    def push(self, line: bytes) -> None:
        self.buffer.append(line)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class WatchHub:
    """All open watches, by storage table; a listener on the store."""

    def __init__(self, store: Store) -> None:
        self.by_table: dict[str, set[Watcher]] = defaultdict(set)
        self.attach(store)

    def attach(self, store: Store) -> None:
        store.listeners.append(self._dispatch)

    def _dispatch(self, change: Change) -> None:
        watchers = self.by_table.get(change.resource)
        if watchers:
            for watcher in list(watchers):
                watcher.offer(change)
            # the shared line went to every watcher's buffer; the history need not
            # keep it (a watch resuming from the history encodes again)
            change.encoded = None

    def add(self, table: str, watcher: Watcher) -> None:
        self.by_table[table].add(watcher)

    def remove(self, table: str, watcher: Watcher) -> None:
        self.by_table[table].discard(watcher)

    def close_all(self) -> int:
        count = 0
        for watchers in self.by_table.values():
            for watcher in list(watchers):
                watcher.close()
                count += 1
        return count

    def count(self) -> int:
        return sum(len(w) for w in self.by_table.values())


def bookmark(kind: Kind, rv: int, initial_end: bool = False) -> bytes:
    meta: JSON = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": kind.kind, "apiVersion": kind.group_version, "metadata": meta}
    return b'{"type":"BOOKMARK","object":' + orjson.dumps(obj) + b"}\n"


def error_event(status: JSON) -> bytes:
    return b'{"type":"ERROR","object":' + orjson.dumps(status) + b"}\n"


def open_watch(  # noqa: PLR0917 - keyword use at every call site
    store: Store,
    hub: WatchHub,
    kind: Kind,
    namespace: str,
    opts: ListOptions,
    labels: Predicate,
    fields: Predicate,
    selective: bool,
    encode: Encoder | None,
) -> Watcher:
    """Register a watcher and queue its initial events, all without yielding."""
    watcher = Watcher(kind, namespace, labels, fields, encode, selective)
    rv_text = opts.resource_version
    initial = opts.send_initial_events
    if initial is None:
        initial = rv_text in ("", "0")
    if initial:
        for obj in store.items(kind.table, namespace or None):
            if watcher.matches(obj):
                change = Change(0, "ADDED", kind.table, obj, None)
                watcher.buffer.append(watcher._line(change, "ADDED"))
        watcher.last_rv = store.rv
        if opts.send_initial_events:
            watcher.buffer.append(bookmark(kind, store.rv, initial_end=True))
    elif rv_text not in ("", "0"):
        start = int(rv_text)
        try:
            changes = store.changes_since(start)
        except Expired as exc:
            status = statuses.expired(str(exc)).status
            watcher.buffer.append(error_event(status))
            watcher.closed = True
            return watcher
        watcher.last_rv = max(start, 0)
        for change in changes:
            if change.resource == kind.table:
                watcher.offer(change)
        watcher.last_rv = max(watcher.last_rv, start)
    hub.add(kind.table, watcher)
    return watcher


async def stream(
    request: web.Request,
    hub: WatchHub,
    watcher: Watcher,
    *,
    timeout: float,
    bookmark_every: float | None,
    current_rv: Callable[[], int],
    content_type: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Write the watcher's events until it closes, the client leaves or time is up."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type, **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    next_bookmark = loop.time() + bookmark_every if bookmark_every else None
    wake = watcher.wake
    try:
        while True:
            if watcher.buffer:
                chunk = b"".join(watcher.buffer) if len(watcher.buffer) > 1 else watcher.buffer[0]
                watcher.buffer.clear()
                await response.write(chunk)
            if watcher.closed:
                break
            now = loop.time()
            if now >= ends:
                break
            deadline = ends if next_bookmark is None else min(ends, next_bookmark)
            wake.clear()
            if not watcher.buffer and not watcher.closed:
                # one timer handle per sleep, not wait_for's task per wake-up
                alarm = loop.call_at(deadline, wake.set)
                try:
                    await wake.wait()
                finally:
                    alarm.cancel()
            if next_bookmark is not None and loop.time() >= next_bookmark:
                watcher.push(bookmark(watcher.kind, max(watcher.last_rv, current_rv())))
                next_bookmark = loop.time() + (bookmark_every or 60.0)
    except (ConnectionResetError, asyncio.CancelledError) as exc:
        log.debug("watch client went away: %s", exc)
        hub.remove(watcher.kind.table, watcher)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return response
    finally:
        hub.remove(watcher.kind.table, watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def table_encoder(make_row: Callable[[JSON, bool], JSON]) -> Encoder:
    def encode(event_type: str, obj: JSON, first: bool) -> bytes:
        return plain_event(event_type, make_row(obj, first))

    return encode


def watch_content_type(encoding: str) -> str:
    return "application/yaml" if encoding == "yaml" else "application/json"


def unused(*_: Any) -> None:
    """Keep linters quiet about optional hooks."""
