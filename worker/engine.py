"""The one execution path of a request, whatever message carried it.

A request reaches a worker in its own message (``eksops.<operation>``) or inside a
chunk of a bulk submission (``eksops.chunk``); either way :class:`Engine` decides, for
each request: its arguments are valid or it fails alone; it belongs to this message
or is left to the one that owns it; it ended already (its stored outcome answers, and
nothing is counted) or it starts (lease, attempt); it runs, and a transient failure is
retried in place with the one retry policy (``worker.retries``: the thread waits, which
is back-pressure on a throttling cluster, and the poller reads ``retrying``); its
outcome is stored once. Redis going away at any step starts that step over
(``until_redis_answers``), never ending the request with an outage.

The engine's dependencies are passed in (``worker.runtime.Runtime``); its
:class:`Observer` is told, with the :class:`Carrier` the request came in, of a chunk's
requests being received, of each request's start, retries and end, and of the chunk
being finished: that is
how metrics (``worker.metering``) and the per-request task events of chunk items
(``worker.taskevents``) see every request, whatever carried it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import orjson
from celery import states
from pydantic import ValidationError

from worker.catalog import Spec, spec_of
from worker.contracts import ChunkItem, ClusterRef, Operation
from worker.dispatch import Executed, execute
from worker.errors import EksOpsError, InvalidName, InvalidRequest, TransientError
from worker.executions import INFRASTRUCTURE_ERRORS, Execution, until_redis_answers
from worker.logs import bound_request
from worker.names import normalise_request_id
from worker.operations.limiter import BULK_WORK, release_early
from worker.records import Alongside, Claim, Field, SentStart, next_attempt, unstart
from worker.retries import log_failure, log_giving_up, log_retry
from worker.runtime import Runtime
from worker.validation import explain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Carrier:
    """The message a request came in: its own (``chunk`` False) or a chunk's."""

    message_id: str
    chunk: bool
    bulk: bool = False  # from the bulk lane
    enqueued_at: float | None = None  # when the producer enqueued it (epoch seconds)
    runner: bool = False  # run by an interactive runner (``worker.runners``), not a task

    @property
    def celery_tells(self) -> bool:
        """Whether Celery sends this request's task events itself: it is the task of its
        own message. A chunk's items and what a runner runs are not Celery tasks."""
        return not (self.chunk or self.runner)


class Observer(Protocol):
    """Told what happens to each request (task events, metrics); must not raise."""

    def received(self, carrier: Carrier, spec: Spec, requests: Sequence[Request]) -> None: ...

    def started(self, carrier: Carrier, request_id: str, spec: Spec, attempt: int) -> None: ...

    def retrying(
        self, carrier: Carrier, request_id: str, spec: Spec, exc: EksOpsError, countdown: float
    ) -> None: ...

    def ended(
        self, carrier: Carrier, request_id: str, spec: Spec, state: str, outcome: Any
    ) -> None: ...

    def finished(self, carrier: Carrier, spec: Spec) -> None: ...


class Silent:
    """An observer that is told everything and does nothing."""

    def received(self, carrier: Carrier, spec: Spec, requests: Sequence[Request]) -> None:
        """Nothing to do."""

    def started(self, carrier: Carrier, request_id: str, spec: Spec, attempt: int) -> None:
        """Nothing to do."""

    def retrying(
        self, carrier: Carrier, request_id: str, spec: Spec, exc: EksOpsError, countdown: float
    ) -> None:
        """Nothing to do."""

    def ended(
        self, carrier: Carrier, request_id: str, spec: Spec, state: str, outcome: Any
    ) -> None:
        """Nothing to do."""

    def finished(self, carrier: Carrier, spec: Spec) -> None:
        """Nothing to do."""


class Observers:
    """Several observers, told in turn; one that raises is logged and the rest still told."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def _each(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                logger.exception("Observer %s failed in %s", type(observer).__name__, method)

    def received(self, carrier: Carrier, spec: Spec, requests: Sequence[Request]) -> None:
        """Tell every observer a chunk's requests were received."""
        self._each("received", carrier, spec, requests)

    def started(self, carrier: Carrier, request_id: str, spec: Spec, attempt: int) -> None:
        """Tell every observer a request started."""
        self._each("started", carrier, request_id, spec, attempt)

    def retrying(
        self, carrier: Carrier, request_id: str, spec: Spec, exc: EksOpsError, countdown: float
    ) -> None:
        """Tell every observer a request is retried in place."""
        self._each("retrying", carrier, request_id, spec, exc, countdown)

    def ended(
        self, carrier: Carrier, request_id: str, spec: Spec, state: str, outcome: Any
    ) -> None:
        """Tell every observer a request ended."""
        self._each("ended", carrier, request_id, spec, state, outcome)

    def finished(self, carrier: Carrier, spec: Spec) -> None:
        """Tell every observer a chunk's requests have all been run."""
        self._each("finished", carrier, spec)


@dataclass(frozen=True)
class Request:
    """One request of a message: its arguments, or why they cannot be run."""

    request_id: str
    arguments: dict[str, Any] | None
    invalid: InvalidRequest | None = None


@dataclass
class Tally:
    """What became of a message's requests (a chunk reports it as its result)."""

    operation: str
    requests: int
    ran: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    def as_result(self) -> dict[str, Any]:
        """Return the tally as the JSON result of the message's own task."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Ended:
    """A request's outcome: Celery's state (SUCCESS or FAILURE) and the result or error."""

    state: str
    outcome: Any  # the result dict, or the EksOpsError
    ran: bool  # False: skipped (another message's, or ended before this delivery)


@contextlib.contextmanager
def bulk_work(bulk: bool) -> Iterator[None]:
    """Mark this thread's cluster calls as bulk work (or not) while the block runs."""
    token = BULK_WORK.set(bulk)
    try:
        yield
    finally:
        BULK_WORK.reset(token)


class Engine:
    """Runs the requests of one message through start, run, retry and store."""

    def __init__(self, runtime: Runtime, observer: Observer | None = None) -> None:
        self.runtime = runtime
        self.observer: Observer = observer or Silent()
        # Starts sent ahead (:meth:`sending_start`), by request ID, until their run reads them.
        self._sent: dict[str, _Sent] = {}
        self._sent_lock = threading.Lock()

    def requests(self, message_id: str, raw_items: Sequence[Any]) -> list[Request]:
        """Validate the items of a chunk one by one, each request ID once.

        A malformed item fails on its own (stored as its outcome when it has a usable
        ID, logged and dropped when not) instead of stranding the rest of the chunk; a
        request ID repeated inside the chunk runs once, like a duplicate anywhere else.
        """
        requests: list[Request] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_items, start=1):
            try:
                item = ChunkItem.model_validate(raw)
                request = Request(item.request_id, item.arguments)
            except ValidationError as exc:
                problem = InvalidRequest(
                    explain(exc, what=f"request {index} of chunk {message_id}")
                )
                request_id = _request_id_of(raw)
                if request_id is None:
                    logger.error("%s; it has no usable request ID and is dropped", problem.message)
                    continue
                request = Request(request_id, None, problem)
            if request.request_id in seen:
                with bound_request(request.request_id):
                    logger.warning(
                        "Request %d repeats a request ID of this chunk; it runs once", index
                    )
                continue
            seen.add(request.request_id)
            requests.append(request)
        return requests

    def run(
        self,
        message_id: str,
        operation: Operation,
        requests: Sequence[Request],
        *,
        bulk: bool = False,
        enqueued_at: float | None = None,
    ) -> Tally:
        """Run every request of chunk message ``message_id``, one after the other.

        ``bulk``: the message came from the bulk lane; its cluster calls leave the
        interactive share of the API budget alone. ``enqueued_at``: when it was enqueued.
        """
        carrier = Carrier(message_id, chunk=True, bulk=bulk, enqueued_at=enqueued_at)
        with bulk_work(bulk):
            return self._run(carrier, operation, requests)

    def _run(self, carrier: Carrier, operation: Operation, requests: Sequence[Request]) -> Tally:
        message_id = carrier.message_id
        spec = spec_of(operation)
        self.observer.received(carrier, spec, requests)
        executions = self.runtime.executions
        holder = self.runtime.leases.new_holder()
        # One round trip starts every request of the message (the message owns them all).
        prepared: list[Execution | None] = until_redis_answers(
            partial(
                executions.begin_many,
                [request.request_id for request in requests],
                Claim(holder, spec.task_name, message_id),
            ),
            doing="starting a message's requests",
        )
        tally = Tally(operation=operation.value, requests=len(requests))
        try:
            for request, execution in zip(requests, prepared, strict=True):
                with bound_request(request.request_id):
                    run = _RequestRun(self, spec, carrier, request, holder, execution)
                    ended = until_redis_answers(run, doing="running a request")
                tally.ran += ended.ran
                tally.skipped += not ended.ran
                tally.succeeded += ended.ran and ended.state == states.SUCCESS
                tally.failed += ended.ran and ended.state != states.SUCCESS
        finally:
            self.observer.finished(carrier, spec)
        return tally

    def run_one(
        self,
        request_id: str,
        operation: Operation,
        arguments: dict[str, Any],
        *,
        bulk: bool = False,
        enqueued_at: float | None = None,
        runner: bool = False,
        taken: TakeStart | None = None,
    ) -> Ended:
        """Run a request that came in its own message; return how it ended.

        ``runner``: an interactive runner took the message (no Celery task carries it):
        the observers are told it was received too. ``taken``: its start was sent behind
        the take of its message (:meth:`after_take`), and is read instead of sent.
        """
        spec = spec_of(operation)
        if taken is not None:
            holder, start = taken.holder, taken.start
            if start is None or arguments.get("cluster") is not None:
                # It started nothing (the run asks for its slot again), or the slot asked
                # behind the take is the default cluster's and the request names one.
                release_early()
        else:
            sent = self._sent_ahead(request_id)
            holder = sent.holder if sent is not None else self.runtime.leases.new_holder()
            start = sent.start if sent is not None else None
        carrier = Carrier(
            request_id, chunk=False, bulk=bulk, enqueued_at=enqueued_at, runner=runner
        )
        request = Request(request_id, arguments)
        if runner:
            self.observer.received(carrier, spec, [request])
        run = _RequestRun(self, spec, carrier, request, holder, None)
        run.sent = start
        with bound_request(request_id), bulk_work(bulk):
            return until_redis_answers(run, doing="running the request")

    def after_take(self, note: str, nonce: str) -> TakeStart | None:
        """Return the start to send behind a runner's take, on the same connection: it
        starts the request the take notes (``note``, this take's ``nonce``) and asks for
        its first call's limiter slot (the default cluster's, when its client is built),
        so that taking and starting cost one round trip. None when results live in a
        Redis of their own (the start reads the stored outcome in the same trip)."""
        executions = self.runtime.executions
        if not executions.sends_ahead:
            return None
        holder = self.runtime.leases.new_holder()
        commands = _Commands([executions.after_take(note, nonce, holder)])
        cluster = self.runtime.clusters.built(None)
        ask = cluster.limiter.ask_early(commands, only_if=note) if cluster else None
        return TakeStart(holder, commands.sent, executions.taken_start, ask)

    def undo_start(self, request_id: str, holder: str) -> None:
        """Undo the start ``holder`` made behind a take that was never answered (the
        message goes back to its lane): its lease and its attempt, if still the
        holder's, so whoever takes the message next starts it as the attempt it is."""
        unstart(self.runtime.redis, request_id, holder)

    def give_back(self, request_id: str, taken: TakeStart) -> None:
        """Undo a start sent behind a take whose message is not run here after all (it
        was handed to Celery's consumer): its lease, its attempt, its early slot."""
        if taken.start is None:
            release_early()
            return
        self._give_back(request_id, _Sent(taken.holder, time.monotonic(), start=taken.start))

    @contextlib.contextmanager
    def sending_start(
        self, request_id: str, operation: Operation, arguments: Any
    ) -> Iterator[None]:
        """Send the start of a request whose own message has just arrived, as the block
        (the consumer handing the message to a pool thread) ends; :meth:`run_one` reads
        its reply instead of starting the request itself.

        The worker's consumer wraps its hand-over of the message in this: the thread
        that runs the request wakes while the start is sent, and the round trip
        overlaps with the thread's own way to :meth:`run_one` instead of following it.
        A run that gets there first waits for the send (it is registered before the
        hand-over). Nothing is sent when results live in a Redis of their own; a start
        that could not be sent leaves the start to the run; one that no run reads in
        time (its message was dropped before it ran) is read and given back.
        """
        if not self.runtime.executions.sends_ahead:
            yield
            return
        self.drop_stale()
        sent = _Sent(self.runtime.leases.new_holder(), time.monotonic())
        with self._sent_lock:
            replaced = self._sent.pop(request_id, None)
            self._sent[request_id] = sent
        if replaced is not None:  # the same message twice (a redelivery racing a run)
            self._give_back(request_id, replaced)
        try:
            yield
        finally:
            start = self._send(request_id, sent.holder, operation, arguments)
            with self._sent_lock:
                sent.start = start
                abandoned = sent.abandoned
                sent.ready.set()
            if abandoned and start is not None:
                self._give_back(request_id, sent)

    def _send(
        self, request_id: str, holder: str, operation: Operation, arguments: Any
    ) -> SentStart | None:
        try:
            return self.runtime.executions.send_begin(
                request_id,
                Claim(holder, spec_of(operation).task_name, request_id),
                alongside=self.early_ask(arguments if isinstance(arguments, dict) else None),
            )
        except INFRASTRUCTURE_ERRORS as exc:
            logger.debug("Could not send request %s's start ahead: %s", request_id, exc)
            return None

    def _sent_ahead(self, request_id: str) -> _Sent | None:
        """The start sent ahead for ``request_id``, once sent; None: the run starts it."""
        with self._sent_lock:
            sent = self._sent.pop(request_id, None)
        if sent is None:
            return None
        sent.ready.wait(SENT_WAIT_SECONDS)
        with self._sent_lock:
            if not sent.ready.is_set():  # the consumer is stuck: it gives the start back
                sent.abandoned = True
                return None
        if sent.start is None:
            return None
        if sent.at < self._stale_before():  # its lease may be gone
            self._give_back(request_id, sent)
            return None
        return sent

    def drop_stale(self) -> None:
        """Read and give back the starts sent ahead that no run took in time: their
        message was dropped before it ran (revoked through Celery's own control)."""
        horizon = self._stale_before()
        with self._sent_lock:
            stale = [
                (rid, sent)
                for rid, sent in self._sent.items()
                if sent.at < horizon and sent.ready.is_set()
            ]
            for request_id, _ in stale:
                del self._sent[request_id]
        for request_id, sent in stale:
            self._give_back(request_id, sent)

    def _stale_before(self) -> float:
        """Starts sent before this (monotonic) are stale: a third of the lease is gone."""
        lease = self.runtime.leases.ttl_ms / 1000
        return time.monotonic() - min(SENT_STALE_SECONDS, lease / 3)

    def _give_back(self, request_id: str, sent: _Sent) -> None:
        """Read a start no run will use; undo it (its lease, its attempt) and give back
        its early limiter slot. An attempt left counted would tell the run that comes
        later it is a retry (a delete finding nothing would then read as done)."""
        if sent.start is None:
            return
        try:
            start = sent.start.read()
            if start.leased:
                unstart(self.runtime.redis, request_id, sent.holder)
        except INFRASTRUCTURE_ERRORS as exc:  # the lease and the slot expire by themselves
            logger.debug("Could not give back request %s's start: %s", request_id, exc)
        finally:
            release_early()

    def early_ask(self, arguments: dict[str, Any] | None) -> Alongside | None:
        """Return how a request's start also asks for its first call's limiter slot.

        Only for a cluster this process has a client for already: building one
        (DescribeCluster) waits until the request is validated and in scope.
        """
        raw = (arguments or {}).get("cluster")
        try:
            ref = None if raw is None else ClusterRef.model_validate(raw)
        except ValidationError:
            return None  # the request fails validation later, with the reason
        cluster = self.runtime.clusters.built(ref)
        return None if cluster is None else cluster.limiter.ask_early

    # --- one request --------------------------------------------------------------

    def outcome(
        self, spec: Spec, request: Request, execution: Execution, carrier: Carrier
    ) -> tuple[Any, str, dict[str, str]]:
        """Run the request (retrying in place); return its outcome, Celery state, links."""
        if request.invalid is not None:
            logger.error("%s failed: %s", spec.task_name, request.invalid.message)
            return request.invalid, states.FAILURE, {}
        assert request.arguments is not None  # a request is either valid or invalid
        # A failed request keeps its arguments: its batch's failed items can be retried.
        failed_links = {Field.ARGUMENTS.value: orjson.dumps(request.arguments).decode()}
        try:
            executed = self._attempts(spec, request, execution, carrier)
        except EksOpsError as exc:
            log_failure(logger, spec.task_name, exc)
            return exc, states.FAILURE, failed_links
        except INFRASTRUCTURE_ERRORS:
            raise  # not the request's outcome: until_redis_answers starts over
        except Exception as exc:
            logger.exception("%s failed unexpectedly", spec.task_name)
            failure = EksOpsError(f"Internal error: {type(exc).__name__}: {exc}")
            return failure, states.FAILURE, failed_links
        return executed.result, states.SUCCESS, executed.links

    def _attempts(
        self, spec: Spec, request: Request, execution: Execution, carrier: Carrier
    ) -> Executed:
        runtime = self.runtime
        policy = runtime.policy
        attempt = execution.attempt
        assert request.arguments is not None
        for tries in range(policy.max_attempts):
            try:
                return execute(
                    runtime, spec, request.arguments, request_id=request.request_id, attempt=attempt
                )
            except TransientError as exc:
                if tries + 1 >= policy.max_attempts:
                    log_giving_up(logger, spec.task_name, tries + 1, exc)
                    raise
                countdown = policy.countdown(tries, exc.retry_after)
                log_retry(logger, tries + 1, policy, exc, countdown)
                runtime.executions.retrying(execution, exc)
                self.observer.retrying(carrier, request.request_id, spec, exc, countdown)
                time.sleep(countdown)
                attempt = next_attempt(runtime.redis, request.request_id)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


@dataclass
class _RequestRun:
    """One request of a message: started with the message, or (again, after an outage) alone."""

    engine: Engine
    spec: Spec
    carrier: Carrier
    request: Request
    holder: str
    prepared: Execution | None
    # Its start, sent ahead by the consumer (``Engine.sending_start``): read, not sent again.
    sent: SentStart | None = None

    def __call__(self) -> Ended:
        try:
            return self._run()
        finally:
            release_early()  # a slot asked with the start and not used (it did not run)

    def _run(self) -> Ended:
        executions = self.engine.runtime.executions
        execution, self.prepared = self.prepared, None  # a second try starts afresh
        sent, self.sent = self.sent, None
        if execution is None:
            # Its first call's limiter slot is asked for in the same round trip.
            execution = executions.begin(
                self.request.request_id,
                Claim(self.holder, self.spec.task_name, self.carrier.message_id),
                alongside=None if sent else self.engine.early_ask(self.request.arguments),
                # A slot held through a wait for another worker's lease would keep it
                # from the very execution that is waited for.
                on_wait=release_early,
                sent=sent,
            )
        if execution.foreign:
            logger.info("Request belongs to another message; leaving it to that one")
            return Ended(states.IGNORED, None, ran=False)
        if execution.outcome is not None:
            state = str(execution.outcome.get("status"))
            logger.info("Request already ended (%s); not running it again", state)
            return Ended(state, execution.outcome.get("result"), ran=False)
        observer = self.engine.observer
        observer.started(self.carrier, self.request.request_id, self.spec, execution.attempt)
        try:
            outcome, state, links = self.engine.outcome(
                self.spec, self.request, execution, self.carrier
            )
            # Once the cluster has answered, only the write is repeated through an outage:
            # running the request again would count another attempt and could read its
            # own first effect (a delete finding nothing) as a different outcome.
            until_redis_answers(
                partial(executions.store, execution, outcome, state, links=links),
                doing="storing a request's outcome",
            )
        finally:
            executions.done(execution)
        observer.ended(self.carrier, self.request.request_id, self.spec, state, outcome)
        return Ended(state, outcome, ran=True)


class _Commands:
    """Collects the commands queued on it (as on a pipeline's ``execute_command``)."""

    def __init__(self, commands: list[tuple[Any, ...]]) -> None:
        self.sent = commands

    def execute_command(self, *args: Any, **_options: Any) -> None:
        self.sent.append(args)


@dataclass
class TakeStart:
    """A request's start sent behind the take of its message (:meth:`Engine.after_take`):
    its holder, its commands, and (once :meth:`read`) what it found."""

    holder: str
    commands: list[tuple[Any, ...]]
    _start: Callable[[Any], SentStart | None]
    _ask: Callable[[Any], None] | None
    start: SentStart | None = None

    def read(self, replies: Sequence[Any]) -> None:
        """Read the replies of :attr:`commands`, in order (an error reply as itself)."""
        self.start = self._start(replies[0])
        if self._ask is not None:
            self._ask(replies[1])

    def lost(self) -> None:
        """Its replies never came (the take's connection failed): the limiter frees the
        slot its ask may have been granted, and the ended slots the ask carried."""
        if self._ask is not None:
            self._ask(ConnectionError("the replies of a take never came"))


#: A start sent ahead that no run has read after this long (or a third of the lease, if
#: shorter) is given back; a run that finds it older starts afresh.
SENT_STALE_SECONDS = 10.0


#: How long a run waits for the consumer to send its start (it is sending it already).
SENT_WAIT_SECONDS = 1.0


@dataclass
class _Sent:
    """A start sent ahead: the execution's holder, when, and (once ``ready``) the start."""

    holder: str
    at: float
    ready: threading.Event = field(default_factory=threading.Event)
    start: SentStart | None = None  # None once ready: it could not be sent
    abandoned: bool = False  # the run stopped waiting for it


def _request_id_of(raw: Any) -> str | None:
    """Return the request ID of a malformed chunk item, if it has a valid one."""
    value = raw.get("request_id") if isinstance(raw, dict) else None
    try:
        return normalise_request_id(value) if isinstance(value, str) else None
    except InvalidName:
        return None
