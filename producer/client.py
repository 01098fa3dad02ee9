"""The producer library: submit operations, poll or wait for their outcome.

    from producer import EksOps

    eksops = EksOps()                       # REDIS_URL etc. from the environment
    sub = eksops.create_job({"spec": {...}}, namespace="batch")
    status = eksops.wait(sub.request_id, timeout=60)
    result = eksops.result(sub.request_id, timeout=60)   # raises the eksops error on failure

Every request is validated with the worker's own contracts before anything is written,
so invalid input raises :class:`worker.errors.InvalidRequest` and is never enqueued. A
caller-supplied ``request_id`` makes submission idempotent: submitting it again returns
the same request (``duplicate=True``) without a second task. The library raises only
errors of ``worker.errors``: a Redis it cannot reach is
:class:`~worker.errors.QueueUnavailable`, whatever the call.

The six operation methods are thin typed wrappers of :meth:`EksOps.submit` named after
``worker.catalog`` (a unit test keeps them in step with it).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from functools import cached_property, partial
from typing import Any

from celery import Celery, states
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from producer import jobs
from producer.admission import Admission, applies_to, check_request
from producer.audit import Auditor, target_of
from producer.batches import (
    FAILED_SHOWN,
    BatchInterrupted,
    BatchItem,
    BatchStatus,
    BatchSubmission,
    batch_request_ids,
    count_rejected,
    failed_arguments,
    link_retry,
    mark_cancelled,
    open_batch,
    read_batch,
)
from producer.cancel import BatchCancellation, Canceller, announce_revoked, job_deletion
from producer.enqueue import PART, Accepted, Enqueuer, Lane, Outgoing, Reused
from producer.gc_pause import collector_paused
from producer.notify import Listener, Notifier
from producer.queue import make_app, make_redis
from producer.quotas import Quotas
from producer.settings import ProducerSettings
from producer.status import read_parts, read_status, status_of, unreadable
from worker import callbacks, events, jobrecords
from worker.catalog import spec_of, summarise
from worker.contracts import TASK_PREFIX, ClusterRef, Operation, RequestState, RequestStatus
from worker.delivery import lanes
from worker.delivery.results import decode_result_meta
from worker.errors import (
    Conflict,
    EksOpsError,
    EnqueueInterrupted,
    Forbidden,
    InvalidName,
    InvalidRequest,
    NotFound,
    QueueUnavailable,
    QuotaExceeded,
    RequestIdReused,
    StillRunning,
    UnknownRequest,
    error_from_info,
)
from worker.events import Event
from worker.jobrecords import JobRecord
from worker.logs import bound_request
from worker.names import new_request_id, normalise_request_id
from worker.records import Cancel, read_record, record_key
from worker.records import Field as RecordField
from worker.settings import QueueSettings
from worker.tenants import Tenant
from worker.timestamps import now_iso
from worker.validation import explain, validate_settings

logger = logging.getLogger(__name__)

#: How long a waiter trusts the publish of a request's end before it reads again anyway.
_REREAD_SECONDS = 1.0


class Submission(BaseModel):
    """What a caller gets back from a submit: the request ID to poll."""

    request_id: str
    operation: Operation
    duplicate: bool = False
    submitted_at: str


class EksOps:
    """A connection to the eksops queue. Thread-safe; reuse one per process."""

    def __init__(
        self,
        *,
        settings: ProducerSettings | None = None,
        queue: QueueSettings | None = None,
        app: Celery | None = None,
        redis: Any = None,
        tenant: Tenant | str | None = None,
    ) -> None:
        """``tenant``: whom submissions are made for (scope, Job policy, quotas, the
        request record and audit); a name alone attributes without limiting. Callers
        with Redis access are trusted: the tenant is theirs to state."""
        self.settings = settings or validate_settings(ProducerSettings)
        self.tenant = as_tenant(tenant)
        # A library caller that names a tenant is audited; the gateway audits its own calls.
        self.auditor = Auditor(self.settings.audit_sink) if self.tenant is not None else None
        self.queue = queue or validate_settings(QueueSettings)
        self.queue.require_urls()
        self.app = app or make_app(self.queue)
        self.redis = redis if redis is not None else make_redis(self.queue)
        # Validation limits, built once: bulk submits validate thousands of requests.
        self._context = self.settings.limits.as_context()
        self._enqueuer = Enqueuer(
            self.app, self.redis, record_ttl_seconds=self.queue.result_expires_seconds
        )
        #: This client's shared pub/sub listener (its thread starts on first use).
        self.notifier = Notifier(self.redis)
        # The library's own waits: each waiting thread reads its wake-up itself.
        self._listener = Listener(self.redis, shared=self.notifier.subscribe)
        self.admission = Admission(
            Quotas(self.redis, self.app.backend, ttl_seconds=self.queue.result_expires_seconds)
        )

    # --- validation and submission ------------------------------------------------

    def validate(self, operation: Operation, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``arguments`` as the worker will receive them, or raise InvalidRequest."""
        try:
            request = spec_of(operation).request.model_validate(
                dict(arguments), context=self._context
            )
        except ValidationError as exc:
            raise InvalidRequest(explain(exc, what=f"{operation.value} request")) from None
        # Validated values are JSON types already; python mode skips a costly re-encode.
        return request.model_dump(exclude_none=True)

    @staticmethod
    def request_id_for(request_id: str | None) -> str:
        """Return the caller's request ID in canonical form, or a new one."""
        if request_id is None:
            return new_request_id()
        return normalise_request_id(request_id)

    def callback_for(self, callback_url: str | None) -> str | None:
        """Return ``callback_url`` checked (http(s), a host, an allowed one), or None."""
        if callback_url is None:
            return None
        return callbacks.check_url(callback_url, self.settings.callback_allowed_hosts)

    def submit(
        self,
        operation: Operation,
        arguments: Mapping[str, Any],
        *,
        request_id: str | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Validate and enqueue one operation; return its request ID.

        With ``callback_url``, the request's end (and a created Job's end) is POSTed
        there, signed (see ``worker.callbacks``); the request's status shows how each
        delivery went. ``tenant`` (default: this client's) is checked first: scope,
        Job policy, quotas (see ``producer.admission``).
        """
        rid = self.request_id_for(request_id)
        tenant = as_tenant(tenant) or self.tenant
        try:
            submission = self._submit(operation, arguments, rid, callback_url, tenant)
        except EksOpsError as exc:
            self._audit(tenant, operation.value, arguments, rid, outcome="refused", reason=exc.code)
            raise
        self._audit(tenant, operation.value, arguments, rid, outcome="accepted")
        return submission

    def _audit(
        self,
        tenant: Tenant | None,
        operation: str,
        arguments: Mapping[str, Any],
        request_id: str,
        *,
        outcome: str,
        reason: str | None = None,
    ) -> None:
        """Write the audit line of a library call made for a tenant (see producer.audit)."""
        if self.auditor is None or tenant is None:
            return
        self.auditor.record(
            tenant=tenant.name,
            source="library",
            operation=operation,
            target=target_of(dict(arguments)),
            request_id=request_id,
            outcome=outcome,
            reason=reason,
        )

    def _submit(
        self,
        operation: Operation,
        arguments: Mapping[str, Any],
        rid: str,
        callback_url: str | None,
        tenant: Tenant | None,
    ) -> Submission:
        with bound_request(rid), _queue_errors(f"submitting {operation.value}"):
            kwargs = self.validate(operation, arguments)
            callback = self.callback_for(callback_url)
            owner = ""
            if tenant is not None and applies_to(tenant):
                kwargs = check_request(tenant, operation, kwargs)
                self.admission.single(tenant, rid)
                owner = tenant.name
            submitted_at = now_iso()
            (accepted,) = self._enqueuer.enqueue(
                [Outgoing(rid, operation.task_name, kwargs)],
                submitted_at=submitted_at,
                callback=callback or "",
                tenant=owner,
            )
            if isinstance(accepted, Reused):
                raise reused(rid, accepted)
            if accepted:
                logger.info("Submitted %s %s", operation.value, summarise(kwargs))
            else:
                logger.info(
                    "Request was already submitted; not enqueued again (%s)", operation.value
                )
        return Submission(
            request_id=rid, operation=operation, duplicate=not accepted, submitted_at=submitted_at
        )

    def submit_many(
        self,
        operation: Operation,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_id: str | None = None,
        durable: bool = True,
        callback_url: str | None = None,
        priority: int = 1,
        tenant: Tenant | str | None = None,
    ) -> BatchSubmission:
        """Validate and enqueue many operations at once, as one batch.

        Each item is the operation's arguments, optionally with its own
        ``request_id``. Bad items are reported (index and reason) and skipped; good
        ones are enqueued in pipelined parts, many requests per message (chunks).
        With ``durable`` (the default) the call returns once Redis has written the
        batch to its append-only file, when the server can confirm that; on a
        replicated Redis every submit returns once a replica has it (see
        :meth:`Enqueuer._confirm`). With ``callback_url``, the end of each of the
        batch's requests, and of each Job they make, is POSTed there.

        A batch travels in the bulk lane, beside the other batches (served round robin)
        and behind single submissions. ``priority`` (1 to 10) is how many turns in a row
        the batch takes when its turn comes: 2 gets twice the share of a batch at 1.
        ``tenant`` (default: this client's): each item is checked against its scope and
        Job policy (refused items reported each on its own), the call against its bulk
        size and rate quotas, and each part against its in-flight quota.
        """
        callback = self.callback_for(callback_url)
        tenant = as_tenant(tenant) or self.tenant
        if tenant is not None and not applies_to(tenant):
            tenant = None
        if tenant is not None:
            size = len(items) if isinstance(items, Sized) else None
            with _queue_errors("submitting a batch"):
                self.admission.bulk(tenant, size)
        if not isinstance(priority, int) or not 1 <= priority <= lanes.MAX_WEIGHT:
            raise InvalidRequest(
                f"Invalid priority {priority!r}: give an integer from 1 to {lanes.MAX_WEIGHT}"
            )
        with collector_paused(), _queue_errors("submitting a batch"):
            summary = self._submit_many(
                operation,
                items,
                batch_id=batch_id,
                durable=durable,
                callback=callback,
                priority=priority,
                tenant=tenant,
            )
        if self.auditor is not None and tenant is not None:
            self.auditor.record(
                tenant=tenant.name,
                source="library",
                operation=f"{operation.value} (bulk)",
                target=f"batch {summary.batch_id} ({summary.accepted} accepted, "
                f"{summary.rejected} refused)",
                outcome="accepted" if summary.accepted or summary.duplicates else "refused",
            )
        return summary

    def _submit_many(
        self,
        operation: Operation,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_id: str | None,
        durable: bool,
        callback: str | None,
        priority: int,
        tenant: Tenant | None = None,
    ) -> BatchSubmission:
        bid = self.request_id_for(batch_id)
        outcomes: list[BatchItem] = []

        def admitted(part: list[Outgoing]) -> list[Outgoing]:
            if tenant is None:
                return part
            try:
                self.admission.part(tenant, [item.request_id for item in part])
            except QuotaExceeded as exc:
                refused = {item.request_id for item in part}
                for outcome in outcomes:
                    if outcome.request_id in refused:
                        outcome.request_id, outcome.error = None, exc.message
                return []
            return part

        def validated_parts() -> Iterator[list[Outgoing]]:
            # Validation runs lazily, part by part, while earlier parts are sent.
            part: list[Outgoing] = []
            for index, item in enumerate(items):
                try:
                    if not isinstance(item, Mapping):
                        raise InvalidRequest(
                            f"Invalid request: an item must be an object of arguments, "
                            f"not {type(item).__name__}"
                        )
                    arguments = dict(item)
                    rid = self.request_id_for(arguments.pop("request_id", None))
                    kwargs = self.validate(operation, arguments)
                    if tenant is not None:
                        kwargs = check_request(tenant, operation, kwargs)
                except (InvalidRequest, Forbidden) as exc:
                    outcomes.append(BatchItem(index=index, error=str(exc)))
                    continue
                outcomes.append(BatchItem(index=index, request_id=rid))
                part.append(Outgoing(rid, operation.task_name, kwargs))
                if len(part) == PART:
                    yield admitted(part)
                    part = []
            if part:
                yield admitted(part)

        now = now_iso()
        ttl = self.queue.result_expires_seconds
        owner = tenant.name if tenant is not None else None
        open_batch(
            self.redis,
            bid,
            operation=operation.value,
            created_at=now,
            ttl=ttl,
            callback=callback,
            tenant=owner,
        )
        try:
            accepted = self._enqueuer.enqueue_parts(
                validated_parts(),
                submitted_at=now,
                batch_id=bid,
                fsync=durable,
                # Fair share by tenant when one is known, else by batch.
                lane=Lane(group=lanes.tenant_group(owner) if owner else bid, weight=priority),
                tenant=owner or "",
            )
        except EnqueueInterrupted as exc:
            raise self._interrupted(bid, operation, outcomes, exc) from exc
        flags = iter(accepted)
        for outcome in outcomes:
            if outcome.request_id is not None:
                _settle(outcome, next(flags))
        summary = BatchSubmission(
            batch_id=bid,
            operation=operation.value,
            accepted=sum(1 for flag in accepted if flag is True),
            duplicates=sum(1 for outcome in outcomes if outcome.duplicate),
            rejected=sum(1 for outcome in outcomes if outcome.error),
            items=outcomes,
        )
        count_rejected(self.redis, bid, summary.rejected)
        with bound_request(bid):
            logger.info(
                "Submitted batch of %s: %d accepted, %d duplicates, %d rejected",
                operation.value,
                summary.accepted,
                summary.duplicates,
                summary.rejected,
            )
        return summary

    @staticmethod
    def _interrupted(
        batch_id: str, operation: Operation, outcomes: list[BatchItem], exc: EnqueueInterrupted
    ) -> BatchInterrupted:
        flags = iter(exc.accepted)
        for outcome in outcomes:
            if outcome.request_id is None:
                continue
            flag = next(flags, None)
            if flag is None:
                outcome.error = "not enqueued (or unknown): Redis failed during the submit"
            else:
                _settle(outcome, flag)
        summary = BatchSubmission(
            batch_id=batch_id,
            operation=operation.value,
            accepted=exc.enqueued,
            duplicates=sum(1 for outcome in outcomes if outcome.duplicate),
            rejected=sum(1 for outcome in outcomes if outcome.error),
            items=outcomes,
        )
        return BatchInterrupted(f"Bulk submit interrupted: {exc}", summary)

    def batch(self, batch_id: str, *, failed_limit: int = FAILED_SHOWN) -> BatchStatus | None:
        """Return a batch's counts by state and its first ``failed_limit`` failed items.

        ``None`` if the batch is unknown (never submitted, or expired).
        """
        bid = self._batch_id(batch_id)
        with _queue_errors(f"reading batch {bid}"):
            return read_batch(
                redis=self.redis, backend=self.app.backend, batch_id=bid, failed_limit=failed_limit
            )

    def create_job(
        self,
        job_manifest: Mapping[str, Any],
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit the creation of a Job (namespace created if missing)."""
        return self.submit(
            Operation.CREATE_JOB,
            _with_cluster({"job_manifest": job_manifest, "namespace": namespace}, cluster),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    def get_job_status(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit a read of a Job's state."""
        return self.submit(
            Operation.GET_JOB_STATUS,
            _with_cluster({"job_name": job_name, "namespace": namespace}, cluster),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    def delete_job(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit the deletion of a Job and its pods."""
        return self.submit(
            Operation.DELETE_JOB,
            _with_cluster({"job_name": job_name, "namespace": namespace}, cluster),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    def create_namespace(
        self,
        namespace_name: str,
        *,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit the creation of a Namespace."""
        return self.submit(
            Operation.CREATE_NAMESPACE,
            _with_cluster({"namespace_name": namespace_name}, cluster),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    def delete_namespace(
        self,
        namespace_name: str,
        *,
        allow_unmanaged: bool = False,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit the deletion of a Namespace (never a protected one)."""
        return self.submit(
            Operation.DELETE_NAMESPACE,
            _with_cluster(
                {"namespace_name": namespace_name, "allow_unmanaged": allow_unmanaged}, cluster
            ),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    def get_job_logs(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        tail_lines: int = 100,
        request_id: str | None = None,
        cluster: ClusterRef | None = None,
        callback_url: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> Submission:
        """Submit a read of the last lines of each container of a Job's newest pods."""
        return self.submit(
            Operation.GET_JOB_LOGS,
            _with_cluster(
                {"job_name": job_name, "namespace": namespace, "tail_lines": tail_lines}, cluster
            ),
            request_id=request_id,
            callback_url=callback_url,
            tenant=tenant,
        )

    # --- polling ------------------------------------------------------------------

    def status(self, request_id: str) -> RequestStatus:
        """Return where ``request_id`` is now; ``unknown`` if it was never submitted."""
        rid = self.request_id_for(request_id)
        return read_status(
            redis=self.redis,
            backend=self.app.backend,
            request_id=rid,
            stale_after=self._stale_after,
            shared=self.results_share_redis,
        )

    @cached_property
    def results_share_redis(self) -> bool:
        """Whether the results live in the broker's Redis (reads and writes then share
        round trips)."""
        return str(self.app.conf.result_backend) == str(self.app.conf.broker_url)

    @cached_property
    def _stale_after(self) -> float:
        """How long a started request may go without an outcome before it reads as lost:
        a request redelivered after a crash restarts within one visibility timeout."""
        return 2.0 * self.queue.visibility_timeout_seconds

    def wait(self, request_id: str, timeout: float) -> RequestStatus:
        """Wait until the request ends or ``timeout`` seconds pass; return the last status.

        Woken the moment its end is stored: the worker (or a canceller) publishes on the
        request's channel in the same step, and this subscribes before it reads.
        """
        rid = self.request_id_for(request_id)
        deadline = time.monotonic() + min(timeout, self.settings.wait_max_seconds)
        with _queue_errors(f"waiting for request {rid}"):
            subscription = self._listener.subscribe(events.request_channel(rid))
        with subscription:
            while True:
                status = self.status(rid)
                remaining = deadline - time.monotonic()
                if status.state.is_terminal or remaining <= 0:
                    return status
                # Bounded too: a publish lost with a broken connection costs a second.
                subscription.wait(min(remaining, _REREAD_SECONDS))

    def _wait_for_outcome(self, request_id: str, timeout: float) -> RequestStatus:
        """:meth:`wait`, woken with the outcome itself: the result backend publishes each
        stored meta on its key's channel (what Celery's own result consumer listens to),
        so the end costs no read. Only when the results live in the broker's Redis, the
        notifier's."""
        rid = self.request_id_for(request_id)
        backend: Any = self.app.backend
        read = partial(read_parts, redis=self.redis, backend=backend, request_id=rid, shared=True)
        deadline = time.monotonic() + min(timeout, self.settings.wait_max_seconds)
        with _queue_errors(f"waiting for request {rid}"):
            key = backend.get_key_for_task(rid)  # Celery's keys are bytes
            subscription = self._listener.subscribe(key.decode() if isinstance(key, bytes) else key)
        with subscription, unreadable(rid):
            record, meta = read()
            while True:
                status = status_of(self.redis, rid, record, meta, stale_after=self._stale_after)
                remaining = deadline - time.monotonic()
                if status.state.is_terminal or remaining <= 0:
                    return status
                # Bounded too: a publish lost with a broken connection costs a second.
                subscription.wait(min(remaining, _REREAD_SECONDS))
                published = subscription.take_message()
                final = decode_result_meta(backend, published) if published else None
                if final is not None and final.get("status") in states.READY_STATES:
                    meta = final  # the outcome as stored, in the same step as the store
                else:
                    record, meta = read()

    def result(self, request_id: str, timeout: float) -> dict[str, Any]:
        """Wait for the request and return its result; raise its error if it failed
        (``Cancelled`` if it was cancelled), StillRunning if ``timeout`` passes first."""
        if self.results_share_redis:
            status = self._wait_for_outcome(request_id, timeout)
        else:
            status = self.wait(request_id, timeout)
        if status.state is RequestState.SUCCEEDED:
            return status.result or {}
        if status.state in (RequestState.FAILED, RequestState.CANCELLED) and status.error:
            raise error_from_info(status.error)
        if status.state is RequestState.UNKNOWN:
            raise UnknownRequest(
                f"Request {status.request_id} is unknown: never submitted, or its result expired"
            )
        raise StillRunning(
            f"Request {status.request_id} is still {status.state.value} after {timeout}s"
        )

    # --- control: cancel and retry ----------------------------------------------

    @property
    def canceller(self) -> Canceller:
        """Return this client's canceller (results in the broker's Redis, or not)."""
        events = bool(self.app.conf.worker_send_task_events)
        return Canceller(
            self.redis,
            self.app.backend,
            results_share_redis=self.results_share_redis,
            announce=partial(announce_revoked, self.app) if events else None,
        )

    def cancel(self, request_id: str) -> RequestStatus:
        """Cancel a request that has not started: it reads ``cancelled`` and never runs.

        A running request finishes, then reads as it ended; an ended one is left as it
        is. Returns the status after the cancel; UnknownRequest if it was never submitted.
        """
        rid = self.request_id_for(request_id)
        with bound_request(rid), _queue_errors(f"cancelling request {rid}"):
            (found,) = self.canceller.cancel([rid]).requests
            if found.found is Cancel.UNKNOWN:
                raise UnknownRequest(
                    f"Request {rid} is unknown: never submitted, or its result expired"
                )
            logger.info("Cancel of request: %s", found.found.name.lower())
        return self.status(rid)

    def cancel_batch(
        self,
        batch_id: str,
        *,
        delete_jobs: bool = False,
        running_timeout: float = 60.0,
        tenant: Tenant | None = None,
    ) -> BatchCancellation:
        """Cancel every request of a batch that has not started; drop its messages.

        With ``delete_jobs``, also delete the Jobs the batch created (after waiting up
        to ``running_timeout`` seconds for its running requests to end), as a new batch
        of delete-job requests: through the queue and the limiter, like any other.
        """
        bid = self._batch_id(batch_id)
        with bound_request(bid), _queue_errors(f"cancelling batch {bid}"):
            request_ids = batch_request_ids(self.redis, bid)
            if request_ids is None:
                raise UnknownRequest(f"Batch {bid} is unknown: never submitted, or it expired")
            mark_cancelled(self.redis, bid, now_iso())
            done = self.canceller.cancel_batch(bid, request_ids)
            logger.info(
                "Cancelled batch: %d cancelled, %d running, %d ended, %d messages dropped",
                done.counts["cancelled"],
                done.counts["running"],
                done.counts["ended"],
                done.dropped_messages,
            )
        summary = BatchCancellation(
            batch_id=bid,
            cancelled=done.counts["cancelled"],
            already_cancelled=done.counts["already"],
            running=done.counts["running"],
            ended=done.counts["ended"],
            dropped_messages=done.dropped_messages,
        )
        if delete_jobs:
            running = [c.request_id for c in done.requests if c.found is Cancel.RUNNING]
            deadline = time.monotonic() + running_timeout
            for rid in running:
                self.wait(rid, max(0.0, deadline - time.monotonic()))
            deletion = self._delete_jobs_of(bid, request_ids, tenant)
            if deletion is not None:
                summary.deletion_batch_id = deletion.batch_id
                summary.jobs_deleting = deletion.accepted + deletion.duplicates
        return summary

    def _delete_jobs_of(
        self, batch_id: str, request_ids: list[str], tenant: Tenant | None
    ) -> BatchSubmission | None:
        with _queue_errors(f"reading the Jobs of batch {batch_id}"):
            pipe = self.redis.pipeline(transaction=False)
            for rid in request_ids:
                pipe.hget(record_key(rid), RecordField.JOB)
            keys = [key.decode() if isinstance(key, bytes) else key for key in pipe.execute()]
            default = jobrecords.default_cluster(self.redis)
        items = [job_deletion(key, default) for key in keys if key]
        if not items:
            return None
        return self.submit_many(Operation.DELETE_JOB, items, tenant=tenant)

    def retry_failed(
        self, batch_id: str, *, priority: int = 1, tenant: Tenant | None = None
    ) -> BatchSubmission:
        """Submit a batch's failed requests again, as a new batch linked to it.

        Each gets a new request ID; the new batch's ``retry_of`` names the old one, and
        the old one lists it in ``retries``. Conflict if nothing failed.
        """
        bid = self._batch_id(batch_id)
        with _queue_errors(f"reading batch {bid}"):
            status = read_batch(redis=self.redis, backend=self.app.backend, batch_id=bid)
            found = failed_arguments(self.redis, self.app.backend, bid)
        if status is None or found is None or status.operation is None:
            raise UnknownRequest(f"Batch {bid} is unknown: never submitted, or it expired")
        arguments, missing = found
        if not arguments:
            more = f" ({missing} failed before a worker could read them)" if missing else ""
            raise Conflict(f"Batch {bid} has no failed requests to retry{more}")
        retry = self.submit_many(
            Operation(status.operation), arguments, priority=priority, tenant=tenant
        )
        with _queue_errors(f"linking batch {retry.batch_id} to {bid}"):
            link_retry(self.redis, bid, retry.batch_id)
        logger.info(
            "Retrying %d failed requests of batch %s as %s", retry.accepted, bid, retry.batch_id
        )
        return retry

    def _batch_id(self, batch_id: str) -> str:
        try:
            return self.request_id_for(batch_id)
        except InvalidName:
            raise InvalidName(
                f"batch ID {batch_id!r} is not a UUID (e.g. 3f2b8c1e-6d4a-4f1b-9c2e-7a5d8e9f0b1c)"
            ) from None

    # --- Jobs, as the job tracker records them --------------------------------------

    def job(
        self, job_name: str, namespace: str = "default", *, cluster: ClusterRef | None = None
    ) -> JobRecord | None:
        """Return the tracker's record of a Job eksops created; None if it has none."""
        with _queue_errors(f"reading job {job_name}"):
            key = jobs.cluster_key(self.redis, cluster)
            return None if key is None else jobs.job_record(self.redis, key, namespace, job_name)

    def job_status(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        cluster: ClusterRef | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Return a Job's status: the seed's body, plus phase, reason, pods and log tail.

        From the tracker's record, with no API call, when the tracker covers the cluster
        (``source: tracker``); otherwise, or for a Job eksops did not create, from the
        cluster through a queued read (``source: cluster``). Raises NotFound (the seed's
        text) for a Job that does not exist, or was deleted before it ended.
        """
        with _queue_errors(f"reading job {job_name}"):
            key = jobs.cluster_key(self.redis, cluster)
            covered = jobs.coverage(self.redis, key).current
            record = jobs.job_record(self.redis, key, namespace, job_name) if key else None
        if covered and record is not None:
            if record.phase == "deleted":
                raise NotFound(
                    f"Job {job_name} not found in namespace {namespace}",
                    details={"job": record.status_body()},
                )
            return record.status_body()
        submission = self.get_job_status(job_name, namespace, cluster=cluster)
        return {**self.result(submission.request_id, timeout), "source": "cluster"}

    def wait_for_job(
        self,
        request_id_or_job: str,
        timeout: float,
        *,
        namespace: str = "default",
        cluster: ClusterRef | None = None,
    ) -> JobRecord:
        """Wait until a Job has ended (succeeded, failed or deleted); return its record.

        ``request_id_or_job`` is the request ID of a create-job request (its Job is
        the one it made) or a Job's name (in ``namespace``, ``cluster``). Woken by the
        tracker's publish, not by polling. When time runs out the record is returned
        as it is (``record.ended`` is False); NotFound if there is none at all.
        """
        deadline = time.monotonic() + timeout
        try:
            rid = normalise_request_id(request_id_or_job)
        except InvalidName:
            rid = None
        with _queue_errors(f"waiting for {request_id_or_job}"):
            if rid is not None:
                self.result(rid, max(0.0, deadline - time.monotonic()))
                key = self.job_of(rid)
                if key is None:
                    raise NotFound(
                        f"Request {rid} made no Job (not a create-job request, or it failed)"
                    )
            else:
                cluster_key = jobs.cluster_key(self.redis, cluster)
                if cluster_key is None:
                    raise NotFound("No worker has said which cluster is the default yet")
                key = jobrecords.job_key(cluster_key, namespace, request_id_or_job)
            record = jobs.wait_for_end(
                self.redis, self.notifier, key, max(0.0, deadline - time.monotonic())
            )
        if record is None:
            raise NotFound(
                f"No record of Job {key.rsplit(':', 1)[-1]}: eksops did not create it, or its "
                "cluster is not tracked"
            )
        return record

    def job_logs(
        self,
        job_name: str,
        namespace: str = "default",
        *,
        tail_lines: int = 100,
        cluster: ClusterRef | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Return the logs of a Job's pods, through the cluster (a queued read).

        When its pods are gone (a TTL removed them after the Job ended), the tail the
        job tracker captured when a container failed, with ``source: tracker``.
        """
        submission = self.get_job_logs(job_name, namespace, tail_lines=tail_lines, cluster=cluster)
        try:
            return self.result(submission.request_id, timeout)
        except NotFound as exc:
            record = self.job(job_name, namespace, cluster=cluster)
            if record is None or record.log is None:
                raise
            logger.info("Job %s has no pods (%s); showing the captured tail", job_name, exc.code)
            tail = record.log
            return {
                "job_name": job_name,
                "namespace": namespace,
                "logs": [
                    {key: tail.get(key) for key in ("pod", "container", "lines", "truncated")}
                ],
                "source": "tracker",
            }

    def events(
        self,
        *,
        batch_id: str | None = None,
        request_id: str | None = None,
        after: str = "$",
        idle_timeout: float | None = None,
    ) -> Iterator[Event]:
        """Yield request and Job transitions as they are recorded (a batch's, a request's).

        ``after`` is an event ID to resume after (``0``: from the oldest kept; ``$``,
        the default: from now). With ``idle_timeout``, the iterator ends once nothing
        has come for that long; without, it waits for ever.
        """
        bid = self.request_id_for(batch_id) if batch_id else None
        rid = self.request_id_for(request_id) if request_id else None
        position = after
        quiet_since = time.monotonic()
        while True:
            with _queue_errors("reading the event stream"):
                found, position = events.read(
                    self.redis, after=position, request_id=rid, batch_id=bid, block_ms=1_000
                )
            if found:
                quiet_since = time.monotonic()
            yield from found
            if idle_timeout is not None and time.monotonic() - quiet_since > idle_timeout:
                return

    def job_of(self, request_id: str) -> str | None:
        """Return the record key of the Job a create-job request made, once it made one."""
        with _queue_errors(f"reading request {request_id}"):
            record = read_record(self.redis, request_id)
        return record.job if record is not None else None

    def close(self) -> None:
        """Release the Redis connections."""
        self.notifier.close()
        self._listener.close()
        self.redis.close()
        self.app.close()


def as_tenant(tenant: Tenant | str | None) -> Tenant | None:
    """Return ``tenant`` as a Tenant: a name alone attributes without limiting."""
    if isinstance(tenant, str):
        try:
            return Tenant(name=tenant)
        except ValidationError as exc:
            raise InvalidRequest(explain(exc, what="tenant")) from None
    return tenant


@contextlib.contextmanager
def _queue_errors(doing: str) -> Iterator[None]:
    """Turn a Redis that cannot be reached into the library's own QueueUnavailable."""
    try:
        yield
    except EksOpsError:
        raise
    except (RedisError, OSError, OperationalError, BackendError) as exc:
        raise QueueUnavailable(f"Redis is unreachable while {doing}: {exc}") from exc


def reused(request_id: str, earlier: Reused) -> RequestIdReused:
    """The conflict of a request ID already used for another request.

    Of another tenant's request nothing is said but that the ID is taken: a tenant that
    guessed an ID learns neither its operation nor whose it is."""
    if earlier.operation is None:
        return RequestIdReused(
            f"Request ID {request_id} is already in use; use a new request ID",
            details={"request_id": request_id},
        )
    operation = earlier.operation.removeprefix(TASK_PREFIX)
    return RequestIdReused(
        f"Request ID {request_id} was already used for {operation} with other arguments; "
        "use a new request ID for a different request",
        details={"request_id": request_id, "operation": operation},
    )


def _settle(outcome: BatchItem, flag: Accepted) -> None:
    """Record what the enqueue said of one item: new, a duplicate, or an ID reused."""
    if isinstance(flag, Reused):
        outcome.error = reused(outcome.request_id or "", flag).message
    else:
        outcome.duplicate = not flag


def _with_cluster(arguments: dict[str, Any], cluster: ClusterRef | None) -> dict[str, Any]:
    if cluster is not None:
        arguments["cluster"] = cluster.model_dump(exclude_none=True)
    return arguments


__all__ = ["EksOps", "EksOpsError", "Submission"]
