"""Cancelling requests and batches that have not run, and saying so everywhere.

A cancel marks each request that is neither running nor ended, atomically with those
checks (``worker.records.cancel_many``): no execution can start it afterwards (the
start script refuses it), wherever its message is. Then, for each one cancelled, the
same things a worker does at a request's end: a ``REVOKED`` outcome in the result
backend (Celery's own state for a task that will not run), the transition on the event
stream, a publish its waiters wake on, and its callback. A request already running
finishes, and reads as it ended; one already ended is left as it is.

A batch's cancel does that for all its items, in parts, then drops the batch's
messages from the bulk lane (so the backlog shrinks at once) unless one of its items
was running: a message restored after a worker died may still carry it, and must reach
the next worker.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import states
from kombu.exceptions import OperationalError
from pydantic import BaseModel
from redis.exceptions import RedisError

from producer.batches import read_metas
from worker import callbacks, events, jobrecords, metrics
from worker.contracts import Operation
from worker.delivery import lanes
from worker.delivery.results import queue_result_meta
from worker.errors import Cancelled
from worker.records import Cancel, Cancelling, cancel_many
from worker.timestamps import now_iso

logger = logging.getLogger(__name__)

#: Requests cancelled per round trip.
PART = 500


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did: each request's answer, and the batch messages dropped."""

    requests: list[Cancelling]
    dropped_messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, requests: list[Cancelling], dropped: int = 0) -> Cancellation:
        counts = Counter(item.found.name.lower() for item in requests)
        return cls(
            requests, dropped, {c.name.lower(): counts.get(c.name.lower(), 0) for c in Cancel}
        )


class Canceller:
    """Cancels requests in the broker's Redis, and stores their end in the result backend."""

    def __init__(
        self,
        redis: Any,
        backend: Any,
        *,
        results_share_redis: bool,
        announce: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._redis = redis
        self._backend = backend
        self._shared = results_share_redis
        self._announce = announce

    def cancel(self, request_ids: Sequence[str]) -> Cancellation:
        """Cancel each of ``request_ids`` that has not started."""
        found: list[Cancelling] = []
        for start in range(0, len(request_ids), PART):
            found += self._cancel_part(list(request_ids[start : start + PART]))
        return Cancellation.of(found)

    def cancel_batch(self, batch_id: str, request_ids: Sequence[str]) -> Cancellation:
        """Cancel a batch's requests that have not started; drop its waiting messages."""
        done = self.cancel(request_ids)
        if done.counts["running"]:
            return done
        return Cancellation.of(done.requests, lanes.drop_group(self._redis, batch_id))

    def _cancel_part(self, request_ids: list[str]) -> list[Cancelling]:
        at = now_iso()
        key_for = self._backend.get_key_for_task
        ended: dict[str, Cancelling] = {}
        if not self._shared:
            # The script cannot see another Redis: what has ended is read first (a request
            # ending in between would be marked too, and still read as it ended).
            metas = read_metas(self._backend, request_ids)
            ended = {
                rid: Cancelling(rid, Cancel.ENDED)
                for rid, meta in zip(request_ids, metas, strict=True)
                if meta.get("status") in states.READY_STATES
            }
        found = cancel_many(
            self._redis,
            [
                (rid, key_for(rid) if self._shared else None)
                for rid in request_ids
                if rid not in ended
            ],
            at=at,
        )
        cancelled = [item for item in found if item.found is Cancel.CANCELLED]
        if cancelled:
            self._store_ends(cancelled, at)
            _count(cancelled)
            if self._announce is not None:
                try:
                    self._announce([item.request_id for item in cancelled])
                except (OperationalError, RedisError, OSError) as exc:
                    # Flower's view only: the cancel itself is done and recorded.
                    logger.warning("Could not send the cancelled requests' events: %s", exc)
        by_id = {item.request_id: item for item in found} | ended
        return [by_id[rid] for rid in request_ids]

    def _store_ends(self, cancelled: list[Cancelling], at: str) -> None:
        outcomes = {
            item.request_id: Cancelled(
                f"Request {item.request_id} was cancelled at {at} before it ran"
            )
            for item in cancelled
        }
        client = getattr(self._backend, "client", None)
        if client is not None and hasattr(client, "pipeline"):
            with client.pipeline(transaction=False) as pipe:
                for rid, outcome in outcomes.items():
                    queue_result_meta(pipe, self._backend, rid, outcome, states.REVOKED)
                pipe.execute()
        else:  # not Redis: Celery's own path, one by one
            for rid, outcome in outcomes.items():
                self._backend.store_result(rid, outcome, states.REVOKED)
        with self._redis.pipeline(transaction=False) as pipe:
            for item in cancelled:
                error = (
                    outcomes[item.request_id].to_info().model_dump(mode="json", exclude_none=True)
                )
                events.append_request(
                    pipe,
                    request_id=item.request_id,
                    batch_id=item.batch_id,
                    state="cancelled",
                    at=at,
                )
                pipe.publish(events.request_channel(item.request_id), "cancelled")
                if item.callback:
                    callbacks.enqueue(
                        pipe,
                        kind="request",
                        request_id=item.request_id,
                        url=item.callback,
                        details={"state": "cancelled", "error": error},
                    )
            pipe.execute()


class BatchCancellation(BaseModel):
    """What cancelling a batch did: its items by what the cancel found, and more."""

    batch_id: str
    cancelled: int  # cancelled now: they never run
    already_cancelled: int
    running: int  # they finish, then read as they ended
    ended: int
    dropped_messages: int  # the batch's messages taken off the bulk lane
    # With delete_jobs: the batch deleting the Jobs the cancelled batch had created.
    deletion_batch_id: str | None = None
    jobs_deleting: int = 0


def job_deletion(job_key: str, default_cluster: str | None) -> dict[str, Any]:
    """Return the delete-job arguments of the Job a record key names."""
    cluster, namespace, name = job_key.removeprefix(jobrecords.JOB_KEY_PREFIX).rsplit(":", 2)
    arguments: dict[str, Any] = {"job_name": name, "namespace": namespace}
    if cluster != default_cluster:
        cluster_name, _, region = cluster.rpartition("@")
        arguments["cluster"] = {"name": cluster_name}
        if region != "kubeconfig":
            arguments["cluster"]["region"] = region
    return arguments


def announce_revoked(app: Any, request_ids: list[str]) -> None:
    """Send Celery's ``task-revoked`` event for each cancelled request, as Flower reads.

    Buffered: one publish carries up to 500 events (Celery's receivers, Flower's
    included, take a list of events in one message).
    """
    with app.amqp.producer_pool.acquire(block=True) as producer:
        dispatcher = app.events.Dispatcher(
            producer.connection,
            hostname=CANCELLER_HOSTNAME,
            channel=producer.channel,
            buffer_group=["task"],
            buffer_limit=500,
        )
        with dispatcher:
            for rid in request_ids:
                dispatcher.send(
                    "task-revoked", uuid=rid, terminated=False, signum=None, expired=False
                )
            dispatcher.flush()


#: The node name the canceller's events carry (Flower shows it as the task's worker).
CANCELLER_HOSTNAME = f"eksops-canceller@{socket.gethostname()}"


def _count(cancelled: Sequence[Cancelling]) -> None:
    """Count each cancelled request as ended (``eksops_requests_ended_total``): by its
    operation, and its lane (a batch's requests travel in the bulk lane)."""
    for item in cancelled:
        try:
            operation = Operation.from_task_name(item.operation or "")
        except ValueError:  # recorded without an operation (an older record)
            continue
        metrics.cancelled(operation.value, metrics.lane(item.batch_id is not None))
