"""Celery task events for the requests carried in chunks, so Flower shows every request.

Celery sends a task's events itself for a request in its own message that its pool
runs. A chunk (``eksops.chunk``) is one Celery task carrying many requests, and a
request an interactive runner runs (``worker.runners``) is no Celery task at all;
without this module Flower would show the chunk and none of its requests, and no
single request a runner ran. :class:`TaskEvents`, an observer of the engine
(``worker.engine.Observer``), sends for each of them the events Celery would have sent
for a task of its own, under the request ID as ``uuid``:
``task-received`` (the operation's task name, e.g. ``eksops.create_job``, the same
arguments summary single tasks carry, and a chunk item's chunk as ``parent_id``),
``task-started``, ``task-retried``, and ``task-succeeded`` or ``task-failed``. So
Flower's task list, its search by request ID, its state filters and its counters count
requests, with their true state.

The events go through Celery's own dispatcher (``app.events.Dispatcher``: the
``celeryev`` exchange, Celery's event format and clock), one per process, on a
connection of its own. They are buffered (the dispatcher's event group, which Flower
and Celery's receivers read as a list) and published together every
:data:`FLUSH_SECONDS` by a daemon thread, and at the end of each chunk, before the
chunk's own task ends: kombu's publish, not the event, is most of an event's cost, and
a request would otherwise pay it three times. Flower hears of a start or an end at
most that much later.

Celery's own events of requests in their own messages are published the same way:
:class:`Consumer` (the worker's ``worker_consumer``) flushes Celery's buffer every
:data:`FLUSH_SECONDS` instead of at every turn of the event loop, which under load cost
a publish for nearly every event in the thread that takes every message.

Events are best effort, as Celery's own are: an event that cannot be published is
dropped (logged once a minute), never the request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, states
from celery.worker.consumer import Consumer as CeleryConsumer
from vine import promise

from worker.catalog import Spec, summarise
from worker.engine import Carrier, Request
from worker.errors import EksOpsError

logger = logging.getLogger(__name__)

#: At most this much of a result's repr travels in its event (Celery's default is 1024).
RESULT_REPR_CHARS = 1024
#: How often the buffered events are published (and at the end of every chunk).
FLUSH_SECONDS = 0.25
_WARN_EVERY_SECONDS = 60.0


def _repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= RESULT_REPR_CHARS else text[: RESULT_REPR_CHARS - 3] + "..."


def exception_text(outcome: Any) -> str:
    """Return a failure as Flower shows exceptions: ``Type('message')``."""
    if isinstance(outcome, EksOpsError):
        return f"{type(outcome).__name__}({outcome.message!r})"
    return _repr(outcome)


class TaskEvents:
    """Sends the task events of chunk items through Celery's event dispatcher."""

    def __init__(self, app: Celery, hostname: Callable[[], str | None]) -> None:
        self._app = app
        self._hostname = hostname
        self._lock = threading.Lock()
        self._dispatcher: Any = None
        self._pid: int | None = None
        self._warned_at = float("-inf")
        self._stopped = threading.Event()
        # request ID -> when it started (monotonic), for the succeeded event's runtime.
        self._started: dict[str, float] = {}

    # --- the observer --------------------------------------------------------------

    def received(self, carrier: Carrier, spec: Spec, requests: Sequence[Request]) -> None:
        """Buffer one ``task-received`` per request of the chunk (or the runner's one)."""
        if carrier.celery_tells:
            return
        for request in requests:
            arguments = request.arguments or {}
            self._send(
                "task-received",
                uuid=request.request_id,
                name=spec.task_name,
                args="()",
                kwargs=summarise(arguments) or "{...}",
                root_id=request.request_id,
                parent_id=carrier.message_id if carrier.chunk else None,
                retries=0,
                eta=None,
                expires=None,
            )

    def started(self, carrier: Carrier, request_id: str, spec: Spec, attempt: int) -> None:
        """Buffer ``task-started``."""
        if not carrier.celery_tells:
            self._started[request_id] = time.monotonic()
            self._send("task-started", uuid=request_id)

    def retrying(
        self, carrier: Carrier, request_id: str, spec: Spec, exc: EksOpsError, countdown: float
    ) -> None:
        """Buffer ``task-retried``."""
        if not carrier.celery_tells:
            self._send("task-retried", uuid=request_id, exception=exception_text(exc), traceback="")

    def ended(
        self, carrier: Carrier, request_id: str, spec: Spec, state: str, outcome: Any
    ) -> None:
        """Buffer ``task-succeeded`` or ``task-failed``."""
        if carrier.celery_tells:
            return
        started = self._started.pop(request_id, None)
        runtime = time.monotonic() - started if started is not None else 0.0
        if state == states.SUCCESS:
            self._send(
                "task-succeeded",
                uuid=request_id,
                result=_repr(outcome),
                runtime=runtime,
            )
        else:
            self._send(
                "task-failed",
                uuid=request_id,
                exception=exception_text(outcome),
                traceback="",
            )

    def finished(self, carrier: Carrier, spec: Spec) -> None:
        """Publish the chunk's events now, before the chunk's own task ends."""
        if carrier.chunk:
            self._flush()

    # --- publishing ------------------------------------------------------------------

    def _send(self, kind: str, **fields: Any) -> None:
        dispatcher = self._current()
        if dispatcher is None:
            return
        try:
            dispatcher.send(kind, **fields)  # buffered: the "task" group
        except Exception as exc:  # best effort: an event never fails its request
            self._warn(exc)

    def _flush(self) -> None:
        dispatcher = self._current()
        if dispatcher is None:
            return
        try:
            dispatcher.flush(errors=False, groups=True)
        except Exception as exc:
            self._warn(exc)

    def _flush_periodically(self, pid: int) -> None:
        while self._pid == pid and not self._stopped.wait(FLUSH_SECONDS):
            self._flush()

    def _current(self) -> Any:
        """Return this process's dispatcher and flusher, built on first use (after a fork too)."""
        if self._dispatcher is not None and self._pid == os.getpid():
            return self._dispatcher
        hostname = self._hostname()
        if hostname is None:
            return None  # not a worker node (yet): nobody would know whose events they are
        with self._lock:
            if self._dispatcher is None or self._pid != os.getpid():
                self._dispatcher = self._app.events.Dispatcher(
                    self._app.connection_for_write(),
                    hostname=hostname,
                    enabled=True,
                    buffer_while_offline=False,
                    # Every task event is buffered until flushed (see FLUSH_SECONDS).
                    buffer_group=["task"],
                    buffer_limit=1_000_000,
                )
                self._pid = os.getpid()
                threading.Thread(
                    target=self._flush_periodically,
                    args=(self._pid,),
                    name="eksops-task-events",
                    daemon=True,
                ).start()
            return self._dispatcher

    def close(self) -> None:
        """Publish what is buffered, stop the flusher and close the dispatcher's connection."""
        self._flush()
        self._stopped.set()
        with self._lock:
            if self._dispatcher is not None:
                connection = self._dispatcher.connection
                self._dispatcher.close()
                if connection is not None:
                    connection.release()
                self._dispatcher = None

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.warning("Could not send task events to Flower (%s); dropping them", exc)


class Consumer(CeleryConsumer):
    """Celery's worker consumer, publishing its own task events every FLUSH_SECONDS too.

    Celery buffers the events of tasks in their own messages (``task-received``,
    ``task-started``, ``task-succeeded``...) and publishes what is buffered at the next
    turn of the worker's event loop: under load, a publish for nearly every event, in
    the thread that also takes every message. This publishes them the way the chunk
    items' are, together every :data:`FLUSH_SECONDS` (or once Celery's buffer limit is
    reached), from a timer of the event loop (asked for through ``call_soon``, which is
    safe from pool threads), and at shutdown. Set by ``worker_consumer``.
    """

    # Set by Celery (its type stubs do not declare them).
    hub: Any
    event_dispatcher: Any
    _flush_events: Callable[[], None]
    _flush_due: float | None = None
    _schedule: promise | None = None  # one callback in the hub's ready set, however many events

    def on_send_event_buffered(self) -> None:  # type: ignore[override]
        if self.hub:
            if self._schedule is None:
                self._schedule = promise(self._schedule_flush)
            self.hub.call_soon(self._schedule)

    def _schedule_flush(self) -> None:
        now = time.monotonic()
        # A timer lost with a restarted event loop is replaced one period late.
        if self._flush_due is not None and now < self._flush_due + FLUSH_SECONDS:
            return
        self._flush_due = now + FLUSH_SECONDS
        self.hub.call_later(FLUSH_SECONDS, self._flush_buffered)

    def _flush_buffered(self) -> None:
        self._flush_due = None
        self._flush_events()

    def shutdown(self) -> None:
        if getattr(self, "event_dispatcher", None) is not None:
            try:
                self._flush_events()
            except Exception as exc:  # best effort, as every event
                logger.debug("Task events not flushed at shutdown: %s", exc)
        super().shutdown()
