"""Interactive runners: single requests run on the thread that takes them.

A request in its own message reaches Celery's pool through the consumer's event loop:
taken there, decoded, handed to a pool thread that wakes to run it, acknowledged back
on the event loop. For a single request that is about a millisecond of a worker's CPU
and of the caller's wait on top of the API call (``docs/performance.md``). A runner is
a thread of the worker process that takes interactive messages itself
(``worker.delivery.intake``: the same atomic take as the consumer's, recorded as
unacknowledged until the request ran) and runs each through the engine at once, in
the thread that took it.

What a request run this way keeps: the take and its unacknowledged record (a SIGKILL,
a Redis restart and the visibility timeout bring the message back as for any other),
the engine's start, lease, retries and one store, the metrics, the task events Flower
shows (``task-received``, ``task-started``, ``task-succeeded`` or ``task-failed``, sent
by ``worker.taskevents`` as Celery would), Celery's log lines (``Task <name>[<id>]
received`` and how it ended), and the warm shutdown: a stopping worker's runners take
nothing more and finish what they run before it exits. Redis errors are retried with
the one policy (``until_redis_answers``).

How many: :attr:`~worker.settings.QueueSettings.interactive_runners` per process
(``WORKER_INTERACTIVE_RUNNERS``; unset, the ``WORKER_INTERACTIVE_SHARE`` of the pool's
threads, at least one), beside the pool's threads; threads pool only. While one of them
is free, the consumer leaves the interactive lane to them; when all are busy, the pool
takes interactive work too (``worker.delivery.transport.Runners``). Messages a runner
must not run (an ETA, an expiry, a revoked ID, not an operation's task, a body it cannot
decode) are handed to Celery's consumer, which runs them as it always did. What a runner
runs is not in ``celery inspect active`` (Flower's task list, fed by the events, has it).
"""

from __future__ import annotations

import logging
import reprlib
import threading
import time
from functools import partial
from typing import Any

from celery import bootsteps, states
from celery.worker import state as worker_state

from worker.catalog import CATALOG
from worker.celery_app import app, engine, queue_settings
from worker.contracts import Operation
from worker.delivery.envelope import enqueued_at
from worker.delivery.intake import Delivery, Intake, TakeRefused
from worker.delivery.lanes import Note
from worker.engine import TakeStart
from worker.errors import EksOpsError
from worker.executions import INFRASTRUCTURE_ERRORS, until_redis_answers
from worker.logs import bound_request

logger = logging.getLogger(__name__)

#: How long a runner waits on the interactive bell before it takes anyway (a message
#: may wait without a token) and looks whether it should stop.
WAIT_SECONDS = 1.0
#: After Redis refused a take (out of memory), a runner waits this long.
REFUSED_PAUSE_SECONDS = 30.0

_results = reprlib.Repr()
_results.maxstring = _results.maxother = 200


def runnable(delivery: Delivery) -> bool:
    """Whether a runner may run this message; the rest go to Celery's consumer."""
    headers = delivery.headers
    if headers.get("eta") or headers.get("expires"):
        return False  # Celery holds it until it is due, or drops it when it expired
    if delivery.request_id in worker_state.revoked:
        return False  # revoked through Celery's control: Celery drops it its own way
    try:
        Operation.from_task_name(delivery.task_name)
    except ValueError:
        return False  # a chunk, or a task that is not eksops's
    return bool(delivery.request_id) and delivery.kwargs is not None


class Runner:
    """One runner thread: take, run, acknowledge, until the worker stops."""

    def __init__(self, intake: Intake, stopping: threading.Event, name: str) -> None:
        self.intake = intake
        self._stopping = stopping
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        self.intake.free()
        try:
            while not self._stopping.is_set():
                try:
                    self._turn()
                except _Stopped:
                    return
                except Exception:  # a message it took returns after the visibility timeout
                    logger.exception("Interactive runner %s failed; going on", self.thread.name)
                    self._stopping.wait(WAIT_SECONDS)
        finally:
            self.intake.busy()  # not free any more: the pool takes interactive work
            self.intake.close()

    def _turn(self) -> None:
        """Take one message (waiting up to WAIT_SECONDS) and run it, if it is to run here."""
        current = engine()
        # The starts sent behind this turn's takes: the last one's replies are read; an
        # earlier one's take was never answered (the connection failed), and what it
        # started is undone before its message goes back to its lane.
        sent: list[TakeStart] = []

        def behind(note: Note) -> list[tuple[Any, ...]]:
            start = current.after_take(note.key, note.nonce)
            if start is None:
                return []
            sent.append(start)
            return start.commands

        def unanswered(tag: str) -> None:
            for start in sent:
                current.undo_start(tag, start.holder)

        try:
            took = until_redis_answers(
                partial(self.intake.take, WAIT_SECONDS, behind, unanswered=unanswered),
                doing="taking an interactive message",
                stopping=self._stopping,
            )
        except TakeRefused as exc:
            logger.warning(
                "Redis refused a take (%s); taking again in %.0fs", exc, REFUSED_PAUSE_SECONDS
            )
            self.intake.busy()  # not free meanwhile: the pool takes single requests
            try:
                self._stopping.wait(REFUSED_PAUSE_SECONDS)
            finally:
                self.intake.free()
            return
        except INFRASTRUCTURE_ERRORS:
            raise _Stopped from None  # stopping: nothing was taken
        start = sent[-1] if sent and took.behind else None
        for unread in sent:
            if unread is not start:  # a take of this turn whose replies never came
                unread.lost()
        delivery = took.delivery
        try:
            if start is not None:
                start.read(took.behind)
            if delivery is None or self._stopping.is_set():
                # Not this runner's to run: nothing taken, a message to hand over, or
                # the worker stops (it takes nothing more). What was started behind the
                # take is given back first, then the message goes where it belongs.
                if start is not None:
                    current.give_back(took.tag or "", start)
                if took.refused is not None:
                    self.intake.hand_over(took.refused)
                elif delivery is not None:
                    self.intake.put_back(delivery.tag)
                return
        except Exception:
            # The message is in this runner's set: the next take returns it to its lane.
            self.intake.lost()
            raise
        self.intake.busy()
        try:
            self._run(delivery, start)
        finally:
            self.intake.free()

    def _run(self, delivery: Delivery, taken: TakeStart | None) -> None:
        """Run one message's request, then acknowledge the message."""
        operation = Operation.from_task_name(delivery.task_name)
        request_id = delivery.request_id
        with bound_request(request_id):
            logger.info("Task %s[%s] received", delivery.task_name, request_id)
            began = time.monotonic()
            try:
                ended = engine().run_one(
                    request_id,
                    operation,
                    delivery.kwargs or {},
                    enqueued_at=enqueued_at(delivery.properties),
                    runner=True,
                    taken=taken,
                )
            except Exception as exc:
                # Past the engine, which stores every outcome it reaches: stored as
                # Celery stores a task's error (the pool path's store_errors_even_if_
                # ignored), so the request reads as failed and its message is done.
                logger.exception("Task %s[%s] raised unexpected", delivery.task_name, request_id)
                until_redis_answers(
                    partial(app.backend.mark_as_failure, request_id, exc),
                    doing="storing a request's failure",
                    stopping=self._stopping,
                )
            else:
                _log_end(delivery, ended.state, ended.outcome, time.monotonic() - began)
        try:
            until_redis_answers(
                partial(self.intake.ack, delivery),
                doing="acknowledging a message",
                stopping=self._stopping,
            )
        except INFRASTRUCTURE_ERRORS as exc:  # stopping: its outcome answers a redelivery
            logger.warning("Message %s not acknowledged (%s)", delivery.tag, exc)


class _Stopped(Exception):
    """The worker stops while a runner waits for Redis."""


def _log_end(delivery: Delivery, state: str, outcome: Any, runtime: float) -> None:
    """Log how the task ended, in the words of Celery's own lines."""
    name, request_id = delivery.task_name, delivery.request_id
    if state == states.SUCCESS:
        logger.info(
            "Task %s[%s] succeeded in %ss: %s", name, request_id, runtime, _results.repr(outcome)
        )
    elif state in (states.IGNORED, states.REVOKED):
        logger.info("Task %s[%s] ignored", name, request_id)
    elif isinstance(outcome, EksOpsError):
        logger.info("Task %s[%s] raised expected: %r", name, request_id, outcome)
    else:
        logger.error("Task %s[%s] failed: %r", name, request_id, outcome)


class Runners(bootsteps.StartStopStep):
    """The worker's interactive runners, started with its pool and stopped before it:
    a warm shutdown waits for what they run, a cold one does not."""

    label = "Interactive runners"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.count = queue_settings().interactive_runners
        self.runners: list[Runner] = []
        self._stopping = threading.Event()

    def include_if(self, parent: Any) -> bool:
        return self.count > 0

    def start(self, parent: Any) -> None:
        accept = app.conf.accept_content
        for index in range(self.count):
            intake = Intake(
                app.connection_for_read(),
                accept=accept,
                runnable=runnable,
                tasks=[spec.task_name for spec in CATALOG.values()],
            )
            runner = Runner(intake, self._stopping, name=f"eksops-runner-{index + 1}")
            self.runners.append(runner)
            runner.start()
        logger.info("%d interactive runner(s) take single requests", self.count)

    def stop(self, parent: Any) -> None:
        self._stop(wait=None)

    def terminate(self, parent: Any) -> None:
        self._stop(wait=1.0)

    def _stop(self, *, wait: float | None) -> None:
        self._stopping.set()
        for runner in self.runners:
            try:
                runner.intake.wake()
            except Exception as exc:  # it notices within WAIT_SECONDS anyway
                logger.debug("Could not wake runner %s: %s", runner.thread.name, exc)
        for runner in self.runners:
            runner.thread.join(wait)
        self.runners.clear()
