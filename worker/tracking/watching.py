"""List, then watch, a kind of object through a cluster client: the tracker's only reads.

:func:`list_all` pages through a label-selected list (one consistent snapshot: every
page carries the first page's resource version) and returns the version to watch
from. :func:`watch` opens one watch from a resource version, with bookmarks, and
yields its events as they arrive; the server ends it after ``timeoutSeconds`` and the
caller watches again from the last version it saw, so a long-lived watch is a chain of
short requests, each with a fresh token if the old one aged (the EKS token is checked
when a request starts). An ``ERROR`` event of 410 (the resume point is older than the
server's history) raises :class:`~worker.errors.Gone`: the caller lists again. Every
failure is an error of the eksops tree.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from worker.errors import EksOpsError, Gone, error_class_for_status
from worker.operations.clients import ClusterClient
from worker.operations.translate import translate

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class Listed:
    """A complete list: every item, and the resource version to watch from."""

    items: list[dict[str, Any]]
    resource_version: str


def list_all(cluster: ClusterClient, path: str, *, selector: str) -> Listed:
    """Return every object at ``path`` matching ``selector``, page by page."""
    items: list[dict[str, Any]] = []
    query = {"labelSelector": selector, "limit": str(PAGE_SIZE)}
    version = ""
    while True:
        page = cluster.request("GET", path, query=query)
        metadata = page.get("metadata") or {}
        version = version or str(metadata.get("resourceVersion") or "")
        items.extend(page.get("items") or [])
        token = metadata.get("continue")
        if not token:
            return Listed(items, version)
        query = {**query, "continue": str(token)}


def watch(
    cluster: ClusterClient,
    path: str,
    *,
    selector: str,
    resource_version: str,
    timeout_seconds: int,
) -> Iterator[dict[str, Any]]:
    """Yield the watch events at ``path`` after ``resource_version``, until the server ends it.

    ``BOOKMARK`` events are yielded too (their object carries only the new resource
    version). Raises :class:`Gone` for an expired resume point.
    """
    lines = watch_lines(
        cluster,
        path,
        selector=selector,
        resource_version=resource_version,
        timeout_seconds=timeout_seconds,
    )
    for line in lines:
        yield decode(line)


def watch_lines(
    cluster: ClusterClient,
    path: str,
    *,
    selector: str,
    resource_version: str,
    timeout_seconds: int,
) -> Iterator[bytes]:
    """:func:`watch`'s events as the lines the server sent, not decoded yet (see :func:`decode`).

    A line is a few kilobytes; its decoded object ten times that, so a reader that
    buffers events buffers lines.
    """
    response = cluster.open(
        path,
        query={
            "watch": "1",
            "labelSelector": selector,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        },
        # Nothing may come for a while: bookmarks are about a minute apart upstream.
        read_timeout=timeout_seconds + 30,
    )
    try:
        yield from _lines(response)
    except EksOpsError:
        raise
    except Exception as exc:
        raise translate(exc) from exc
    finally:
        response.response.release_conn()


def decode(line: bytes) -> dict[str, Any]:
    """Return the watch event a line carries; raise the eksops error an ``ERROR`` event says."""
    try:
        event: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise translate(exc) from exc
    if event.get("type") == "ERROR":
        raise _error(event.get("object") or {})
    return event


def _lines(response: Any) -> Iterator[bytes]:
    pending = b""
    for chunk in response.response.stream(65536, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _error(status: dict[str, Any]) -> EksOpsError:
    code = int(status.get("code") or 500)
    message = str(status.get("message") or "watch error")
    reason = status.get("reason")
    if code == 410:
        return Gone(message, 410, reason or "Expired")
    cls = error_class_for_status(code)
    return cls(message, code, reason or None, {"reason": reason or ""})


def batched(items: Iterator[T], *, most: int = 500, buffered: int = 2_000) -> Iterator[list[T]]:
    """Yield ``items`` in lists of whatever has arrived (at most ``most`` per list).

    ``items`` is read in a thread of its own into a bounded buffer: while the caller
    writes one list, the next events gather, so a burst of changes costs one write
    per list instead of one per event; when events trickle, each list has one. An
    exception of ``items`` is raised here after the items that came before it.
    """
    pending: queue.Queue[Any] = queue.Queue(maxsize=buffered)
    abandoned = threading.Event()

    def offer(item: Any) -> bool:
        while not abandoned.is_set():
            try:
                pending.put(item, timeout=0.5)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return  # the caller has gone: stop reading
            offer(_END)
        except BaseException as exc:  # forwarded to the caller, in order
            offer(exc)

    threading.Thread(target=read, name="eksops-watch-reader", daemon=True).start()
    try:
        while True:
            batch: list[T] = []
            item = pending.get()
            while True:
                if item is _END:
                    if batch:
                        yield batch
                    return
                if isinstance(item, BaseException):
                    if batch:
                        yield batch
                    raise item
                batch.append(item)
                if len(batch) >= most:
                    break
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
            yield batch
    finally:
        abandoned.set()
