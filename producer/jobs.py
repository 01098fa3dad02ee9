"""Reading Jobs from their records: status without an API call, and waiting for an end.

A Job's state is read from its record (``worker.jobrecords``) when the cluster's
tracker *covers* it: the tracker's Job watch is established and it was heard from
within :data:`COVERAGE_STALE_SECONDS`. Records then trail the cluster by the watch's
own delay (tens of milliseconds; bounded by the staleness limit when the tracker is
cut off). A Job without a record while the tracker covers its cluster is a Job eksops
did not create, or none at all: the caller falls back to asking the cluster (a queued
read). Waiting for a Job is push: subscribe to its channel first, then read, then
sleep until the tracker publishes a transition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from producer.notify import Notifier
from worker import jobrecords
from worker.contracts import ClusterRef
from worker.jobrecords import JobRecord

#: How long since the tracker was heard from before its records are not trusted.
COVERAGE_STALE_SECONDS = 10.0


@dataclass(frozen=True)
class Coverage:
    """Whether a cluster's tracker is following its Jobs now."""

    cluster: str | None
    current: bool
    state: str
    age_seconds: float | None
    holder: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def cluster_key(redis: Any, ref: ClusterRef | None) -> str | None:
    """Return the ``name@region`` of ``ref`` (the workers' default cluster when None)."""
    default = jobrecords.default_cluster(redis)
    if ref is None:
        return default
    region = ref.region or (default.rsplit("@", 1)[1] if default else None)
    return f"{ref.name}@{region or 'kubeconfig'}"


def coverage(redis: Any, cluster: str | None) -> Coverage:
    """Return whether the tracker of ``cluster`` covers it now (one round trip)."""
    if cluster is None:
        return Coverage(None, False, "no worker has said which cluster is the default", None)
    pipe = redis.pipeline(transaction=False)
    pipe.time()
    pipe.hmget(jobrecords.tracker_key(cluster), "heartbeat", "jobs_state", "holder")
    pipe.exists(jobrecords.lease_key(cluster))
    (seconds, micros), (heartbeat, state, holder), leased = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    age = (now_ms - int(heartbeat)) / 1000 if heartbeat else None
    state_text = _text(state) or "not tracked"
    current = bool(leased) and state_text == "watching" and age is not None
    current = current and age is not None and age <= COVERAGE_STALE_SECONDS
    return Coverage(cluster, current, state_text, age, _text(holder))


def trackers(redis: Any) -> list[Coverage]:
    """Return, for every cluster eksops has touched, whether its tracker covers it now."""
    clusters = sorted(_text(key) or "" for key in redis.hkeys(jobrecords.CLUSTERS_KEY))
    return [coverage(redis, cluster) for cluster in clusters]


def job_record(redis: Any, cluster: str, namespace: str, name: str) -> JobRecord | None:
    """Return the record of Job ``namespace/name`` on ``cluster``, if there is one."""
    return jobrecords.read_job(redis, jobrecords.job_key(cluster, namespace, name))


#: How long a waiter for a failed Job's end waits on for its Pod's exit code and log.
SETTLE_SECONDS = 5.0


class EndWatch:
    """When a waiter for a Job's end has its answer: the Job has ended and its record is
    settled (a failed Job's Pod details follow its end closely), or ``SETTLE_SECONDS``
    have passed since the end was first seen. One rule for the library and the gateway."""

    def __init__(self) -> None:
        self._settle_by: float | None = None

    def done(self, record: JobRecord | None, now: float) -> bool:
        if record is None or not record.ended:
            return False
        self._settle_by = self._settle_by or now + SETTLE_SECONDS
        return record.settled or now >= self._settle_by


def wait_for_end(redis: Any, notifier: Notifier, key: str, timeout: float) -> JobRecord | None:
    """Return the record at ``key`` once it has ended, or as it is when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    end = EndWatch()
    with notifier.subscribe(jobrecords.notify_channel(key)) as subscription:
        while True:
            record = jobrecords.read_job(redis, key)
            now = time.monotonic()
            remaining = deadline - now
            if end.done(record, now) or remaining <= 0:
                return record
            # A bounded sleep too: a notification lost with a connection costs a second.
            subscription.wait(min(remaining, 1.0))
