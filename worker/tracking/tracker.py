"""One cluster's tracker: every eksops Job and its Pods, followed into job records.

Two list-and-watch loops, one over Jobs and one over Pods, both selected by
``app.kubernetes.io/managed-by=eksops`` (eksops puts the label on each Job and on its
pod template), cluster-wide: two watches per cluster, whatever the number of Jobs.
Each event rewrites the record from the object it carries (no state per Job is kept
in memory), in one fenced script that also stores the watch's resume point, so a
tracker that takes over resumes exactly where the last write left off: no transition
lost (it is in the list or after the resume point) and none doubled (an unchanged
phase publishes nothing). A resume point the server no longer has (``410 Gone``)
means listing again: the Jobs the list no longer shows, whose end was never seen, are
recorded as ``deleted``. A failed container's log tail is fetched as soon as the pod
reports the failure (before a TTL can remove it), by a small fetcher of its own.
Every call goes through the cluster's client: its token (re-minted when it ages and
on a 401), its limiter, its error tree; errors and 429s back off and retry.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from worker import jobrecords, metrics
from worker.contracts import MANAGED_BY_LABEL, MANAGED_BY_VALUE, REQUEST_ID_LABEL, TENANT_LABEL
from worker.errors import EksOpsError, Gone
from worker.events import EVENTS_MAX_LENGTH, STREAM_KEY
from worker.operations.clients import ClusterClient
from worker.timestamps import now_iso
from worker.tracking import summaries
from worker.tracking.lease import TrackerLease
from worker.tracking.watching import Listed, batched, decode, list_all, watch_lines

logger = logging.getLogger(__name__)

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
_JOBS = "/apis/batch/v1/jobs"
_PODS = "/api/v1/pods"
_WRITE_BATCH = 200  # records written per pipelined round trip after a list


def _decoded(lines: list[bytes]) -> tuple[list[dict[str, Any]], EksOpsError | None]:
    """The events of ``lines``, up to the first that says the watch failed (and its error)."""
    events = []
    for line in lines:
        try:
            events.append(decode(line))
        except EksOpsError as exc:
            return events, exc
    return events, None


class LeaseLost(Exception):
    """Raised when a write finds the lease held by someone else: this tracker stops."""


@dataclass(frozen=True)
class Write:
    """One fenced script call an event needs, and what to do once it is written."""

    script: Any
    keys: list[str]
    args: list[Any]
    after: Callable[[], None] | None = None
    on_result: Callable[[Any], None] | None = None  # told the script's reply


def count_job_end(args: list[Any], result: Any) -> None:
    """Count a Job's end (``eksops_job_outcomes_total``) if its write just ended it.

    ``args`` are :data:`~worker.jobrecords.UPSERT_JOB`'s; it replies 1 when the phase
    changed, so each Job's end is counted once however often its events repeat.
    """
    if result != 1:
        return
    phase = "deleted" if args[9] == "1" else str(args[1])
    if phase in ("succeeded", "failed", "deleted"):
        metrics.job_ended(phase, str(args[11]))


@dataclass(frozen=True)
class TrackerSettings:
    """How a tracker behaves; every duration in seconds."""

    lease_seconds: float = 5.0
    watch_timeout_seconds: int = 240
    record_ttl_seconds: int = 86_400
    log_tail_lines: int = 50
    log_tail_bytes: int = 16_384
    pods_kept: int = 10
    backoff_max_seconds: float = 30.0


class ClusterTracker:
    """Follows one cluster's eksops Jobs while this process holds the cluster's lease."""

    def __init__(
        self,
        cluster: ClusterClient,
        redis: Any,
        lease: TrackerLease,
        settings: TrackerSettings,
    ) -> None:
        self.cluster = cluster
        self.key = cluster.target.key
        self.lease = lease
        self.settings = settings
        self._redis = redis
        self._upsert_job = redis.register_script(jobrecords.UPSERT_JOB)
        self._upsert_pod = redis.register_script(jobrecords.UPSERT_POD)
        self._set_log = redis.register_script(jobrecords.SET_LOG)
        self._set_tracker = redis.register_script(jobrecords.SET_TRACKER)
        self._tracker_hash = jobrecords.tracker_key(self.key)
        self._stop = threading.Event()
        self._logs: queue.Queue[tuple[str, str, str, str]] = queue.Queue(maxsize=1000)
        self._fetched: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._calls = {"api_lists": 0, "api_watches": 0, "api_logs": 0}
        self._state = {"jobs": "starting", "pods": "starting"}
        self._lock = threading.Lock()

    # --- running ------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Track until ``stop`` is set or the lease is lost; then give the lease up."""
        logger.info("Tracking the Jobs of %s (lease epoch %d)", self.key, self.lease.epoch)
        threads = [
            threading.Thread(target=self._guard, args=(self._jobs_loop,), daemon=True),
            threading.Thread(target=self._guard, args=(self._pods_loop,), daemon=True),
            threading.Thread(target=self._guard, args=(self._log_loop,), daemon=True),
        ]
        for thread in threads:
            thread.name = f"eksops-tracker-{self.key}"
            thread.start()
        try:
            while (
                not stop.wait(min(1.0, self.settings.lease_seconds / 4)) and not self._stop.is_set()
            ):
                if not self.lease.renew():
                    logger.warning(
                        "Lost the tracker lease of %s; another worker tracks it", self.key
                    )
                    break
                self._heartbeat()
        except Exception as exc:  # Redis gone: stop, the lease lapses, someone takes over
            logger.warning("Tracker of %s stops: %s", self.key, exc)
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(5)
            try:
                self.lease.release()
            except Exception as exc:
                logger.debug("Could not release the lease of %s: %s", self.key, exc)
            logger.info("Stopped tracking %s", self.key)

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except LeaseLost:
            logger.warning("Tracker of %s lost its lease while writing; stopping", self.key)
        except Exception:
            logger.exception("Tracker of %s failed unexpectedly; stopping it", self.key)
        finally:
            self._stop.set()

    def _heartbeat(self) -> None:
        seconds, micros = self._redis.time()
        with self._lock:
            calls, self._calls = self._calls, dict.fromkeys(self._calls, 0)
            state = dict(self._state)
        pipe = self._redis.pipeline(transaction=False)
        for name, count in calls.items():
            if count:
                pipe.hincrby(self._tracker_hash, name, count)
        pipe.execute()
        self._fenced(
            "heartbeat", str(int(seconds) * 1000 + int(micros) // 1000),
            "jobs_state", state["jobs"], "pods_state", state["pods"],
        )  # fmt: skip

    def _count(self, name: str) -> None:
        with self._lock:
            self._calls[name] += 1

    def _set_state(self, kind: str, state: str) -> None:
        with self._lock:
            self._state[kind] = state

    def _fenced(self, *fields: str) -> None:
        if (
            self._set_tracker(
                keys=[self._tracker_hash, self.lease.key], args=[self.lease.holder, *fields]
            )
            == -1
        ):
            raise LeaseLost

    # --- the two loops ------------------------------------------------------------

    def _follow(
        self,
        kind: str,
        path: str,
        on_list: Callable[[Listed], None],
        prepare: Callable[[dict[str, Any], str], Write | None],
    ) -> None:
        """List (unless resuming), then watch, forever; re-list after 410, back off on errors."""
        version = self._resume_point(kind)
        failures = 0
        while not self._stop.is_set():
            try:
                if not version:
                    self._set_state(kind, "listing")
                    listed = list_all(self.cluster, path, selector=SELECTOR)
                    self._count("api_lists")
                    on_list(listed)
                    version = listed.resource_version
                    self._fenced(f"{kind}_rv", version)
                self._set_state(kind, "watching")
                self._count("api_watches")
                lines = watch_lines(
                    self.cluster,
                    path,
                    selector=SELECTOR,
                    resource_version=version,
                    timeout_seconds=self.settings.watch_timeout_seconds,
                )
                for batch in batched(lines):
                    if self._stop.is_set():
                        return
                    events, error = _decoded(batch)
                    if events:
                        version = self._write_events(kind, events, prepare) or version
                    if error is not None:
                        raise error
                failures = 0
            except Gone:
                logger.info(
                    "Resume point of the %s watch of %s expired; listing again", kind, self.key
                )
                version = ""
            except EksOpsError as exc:
                failures += 1
                delay = min(self.settings.backoff_max_seconds, 0.5 * 2 ** min(failures, 8))
                delay = max(delay * (0.5 + random.random() / 2), exc.retry_after or 0)  # noqa: S311
                self._set_state(kind, "backoff")
                logger.warning(
                    "Watch of %s on %s failed (%s %s: %s); again in %.1fs",
                    kind, self.key, exc.http_status, exc.code, exc.message, delay,
                )  # fmt: skip
                self._stop.wait(delay)

    def _write_events(
        self,
        kind: str,
        events: list[dict[str, Any]],
        prepare: Callable[[dict[str, Any], str], Write | None],
    ) -> str:
        """Write what ``events`` change, in order, in one round trip; return the last version.

        Each write carries its event's resource version as the resume point, so Redis
        holds, at any instant, the records up to exactly the point it would resume from.
        """
        pipe = self._redis.pipeline(transaction=False)
        writes: list[tuple[Write, int]] = []  # each write and its reply's position
        version = ""
        for event in events:
            version = self._resource_version(event) or version
            write = None if event.get("type") == "BOOKMARK" else prepare(event, version)
            if write is None:
                if version:
                    self._set_tracker(
                        keys=[self._tracker_hash, self.lease.key],
                        args=[self.lease.holder, f"{kind}_rv", version],
                        client=pipe,
                    )
                continue
            writes.append((write, len(pipe)))
            write.script(keys=write.keys, args=write.args, client=pipe)
        replies = pipe.execute()
        if -1 in replies:
            raise LeaseLost
        for write, position in writes:
            if write.on_result is not None:
                write.on_result(replies[position])
            if write.after is not None:
                write.after()
        return version

    def _resume_point(self, kind: str) -> str:
        value = self._redis.hget(self._tracker_hash, f"{kind}_rv")
        return value.decode() if isinstance(value, bytes) else (value or "")

    @staticmethod
    def _resource_version(event: dict[str, Any]) -> str:
        metadata = (event.get("object") or {}).get("metadata") or {}
        return str(metadata.get("resourceVersion") or "")

    def _jobs_loop(self) -> None:
        self._follow("jobs", _JOBS, self._listed_jobs, self._job_write)

    def _pods_loop(self) -> None:
        self._follow("pods", _PODS, self._listed_pods, self._pod_write)

    # --- Jobs ---------------------------------------------------------------------

    def _job_args(
        self, job: dict[str, Any], *, removed: bool, resume: str
    ) -> tuple[list[str], list[Any]]:
        metadata = job.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        key = jobrecords.job_key(self.key, namespace, name)
        labels = metadata.get("labels") or {}
        request_id = str(labels.get(REQUEST_ID_LABEL) or "")
        keys = [
            self.lease.key,
            key,
            jobrecords.open_jobs_key(self.key),
            jobrecords.request_key(request_id or None),
            STREAM_KEY,
            self._tracker_hash,
        ]
        summary = summaries.job_summary(job)
        reason = summary.get("reason")
        args = [
            self.lease.holder,
            summaries.job_phase(job),
            json.dumps(summary),
            str(metadata.get("uid") or ""),
            now_iso(),
            self.settings.record_ttl_seconds,
            request_id,
            EVENTS_MAX_LENGTH,
            key,
            "1" if removed else "0",
            resume,
            reason if isinstance(reason, str) else "",
            str(labels.get(TENANT_LABEL) or ""),
        ]
        return keys, args

    def _job_write(self, event: dict[str, Any], resume: str) -> Write:
        job = event.get("object") or {}
        keys, args = self._job_args(job, removed=event.get("type") == "DELETED", resume=resume)
        return Write(self._upsert_job, keys, args, on_result=partial(count_job_end, args))

    def _listed_jobs(self, listed: Listed) -> None:
        seen = set()
        for start in range(0, len(listed.items), _WRITE_BATCH):
            pipe = self._redis.pipeline(transaction=False)
            written = []
            for job in listed.items[start : start + _WRITE_BATCH]:
                keys, args = self._job_args(job, removed=False, resume="")
                seen.add(keys[1])
                self._upsert_job(keys=keys, args=args, client=pipe)
                written.append(args)
            replies = pipe.execute()
            if -1 in replies:
                raise LeaseLost
            for args, reply in zip(written, replies, strict=True):
                count_job_end(args, reply)
        # Jobs whose end was never seen and that the list no longer shows are gone.
        still_open = {
            member.decode() if isinstance(member, bytes) else member
            for member in self._redis.smembers(jobrecords.open_jobs_key(self.key))
        }
        for key in sorted(still_open - seen):
            namespace, name = key.rsplit(":", 2)[1:]
            record = jobrecords.read_job(self._redis, key)
            labels = {REQUEST_ID_LABEL: record.request_id} if record and record.request_id else {}
            gone = {"metadata": {"namespace": namespace, "name": name, "labels": labels}}
            keys, args = self._job_args(gone, removed=True, resume="")
            args[2] = ""  # keep the record's last known counts and reason
            reply = self._upsert_job(keys=keys, args=args)
            if reply == -1:
                raise LeaseLost
            count_job_end(args, reply)
            logger.info("Job %s went away while it was not watched; recorded as deleted", key)
        logger.info("Listed %d Jobs of %s", len(listed.items), self.key)

    # --- Pods ---------------------------------------------------------------------

    def _pod_args(self, pod: dict[str, Any], resume: str) -> tuple[list[str], list[Any]] | None:
        metadata = pod.get("metadata") or {}
        job = summaries.job_of_pod(pod)
        if job is None:
            return None
        key = jobrecords.job_key(self.key, str(metadata.get("namespace")), job)
        summary = summaries.pod_summary(pod, seen=now_iso())
        keys = [self.lease.key, key, self._tracker_hash]
        args = [
            self.lease.holder,
            str(metadata.get("name")),
            json.dumps(summary),
            now_iso(),
            self.settings.record_ttl_seconds,
            self.settings.pods_kept,
            resume,
        ]
        return keys, args

    def _pod_write(self, event: dict[str, Any], resume: str) -> Write | None:
        """The write of a pod's change; None for a pod gone (its record keeps its last)."""
        pod = event.get("object") or {}
        prepared = None if event.get("type") == "DELETED" else self._pod_args(pod, resume)
        if prepared is None:
            return None
        keys, args = prepared
        return Write(self._upsert_pod, keys, args, after=lambda: self._want_logs(pod, keys[1]))

    def _listed_pods(self, listed: Listed) -> None:
        for start in range(0, len(listed.items), _WRITE_BATCH):
            pipe = self._redis.pipeline(transaction=False)
            pods = listed.items[start : start + _WRITE_BATCH]
            for pod in pods:
                prepared = self._pod_args(pod, "")
                if prepared is not None:
                    self._upsert_pod(keys=prepared[0], args=prepared[1], client=pipe)
            if -1 in pipe.execute():
                raise LeaseLost
            for pod in pods:
                job = summaries.job_of_pod(pod)
                if job is not None:
                    namespace = str((pod.get("metadata") or {}).get("namespace"))
                    self._want_logs(pod, jobrecords.job_key(self.key, namespace, job))

    # --- log tails of failed containers -------------------------------------------

    def _want_logs(self, pod: dict[str, Any], record: str) -> None:
        metadata = pod.get("metadata") or {}
        restarts = {
            c.get("name"): int(c.get("restartCount") or 0)
            for c in (pod.get("status") or {}).get("containerStatuses") or []
        }
        for container in summaries.failed_containers(pod):
            marker = (str(metadata.get("uid")), container, restarts.get(container, 0))
            if marker in self._fetched:
                continue
            self._fetched[marker] = None
            while len(self._fetched) > 10_000:
                self._fetched.popitem(last=False)
            try:
                self._logs.put_nowait(
                    (record, str(metadata.get("namespace")), str(metadata.get("name")), container)
                )
            except queue.Full:
                logger.warning("Log tails are behind; skipping the tail of %s", record)

    def _log_loop(self) -> None:
        while not self._stop.is_set():
            try:
                record, namespace, pod, container = self._logs.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                tail = self._fetch_tail(namespace, pod, container)
            except EksOpsError as exc:
                tail = {"pod": pod, "container": container, "lines": [], "error": exc.message}
            if (
                self._set_log(
                    keys=[self.lease.key, record],
                    args=[self.lease.holder, json.dumps(tail), self.settings.record_ttl_seconds],
                )
                == -1
            ):
                raise LeaseLost

    def _fetch_tail(self, namespace: str, pod: str, container: str) -> dict[str, Any]:
        self._count("api_logs")
        response = self.cluster.open(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            query={
                "container": container,
                "tailLines": str(self.settings.log_tail_lines),
                "limitBytes": str(self.settings.log_tail_bytes),
            },
            accept="application/json, */*",  # what kubectl sends for logs
        )
        try:
            text = response.read().decode("utf-8", errors="replace")
        except Exception as exc:
            raise EksOpsError(f"Could not read the log of {pod}: {exc}") from exc
        lines = text.splitlines()
        return {
            "pod": pod,
            "container": container,
            "lines": lines[-self.settings.log_tail_lines :],
            "truncated": len(text.encode()) >= self.settings.log_tail_bytes,
            "captured_at": now_iso(),
        }
