"""In-memory object storage: namespaces and, per namespace, Jobs.

Nothing runs in the background. Each record carries the times at which it will
change (``gone_at`` for objects being deleted; Job status is derived from
``started``); readers call ``live_*`` which drops what has expired "as of now".
That keeps 100,000 Jobs free when nobody looks at them, and makes every read
consistent with the clock. ``resourceVersion`` is one global counter, as with etcd.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
INITIAL_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def rfc3339(epoch: float) -> str:
    """``metav1.Time`` serialisation: whole seconds, UTC, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class Record:
    """A stored object plus the lifecycle facts kubesim derives its state from."""

    obj: JSON
    created: float
    gone_at: float | None = None
    phase: str = ""
    outcome: str = "succeed"
    duration: float = 0.0
    extra: JSON = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def being_deleted(self) -> bool:
        return "deletionTimestamp" in self.obj["metadata"]


class Store:
    """All objects of one simulated cluster."""

    def __init__(self) -> None:
        self._rv = 0
        self.namespaces: dict[str, Record] = {}
        self.jobs: dict[str, dict[str, Record]] = {}
        self.started = time.time()

    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @property
    def current_rv(self) -> str:
        return str(self._rv)

    @staticmethod
    def new_uid() -> str:
        return str(uuid.uuid4())

    def live_namespace(self, name: str, now: float) -> Record | None:
        record = self.namespaces.get(name)
        if record is not None and record.gone_at is not None and record.gone_at <= now:
            self._purge_namespace(name)
            return None
        return record

    def live_namespaces(self, now: float) -> Iterator[Record]:
        for name in list(self.namespaces):
            record = self.live_namespace(name, now)
            if record is not None:
                yield record

    def _purge_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)
        self.jobs.pop(name, None)

    def live_job(self, namespace: str, name: str, now: float) -> Record | None:
        bucket = self.jobs.get(namespace)
        if bucket is None:
            return None
        record = bucket.get(name)
        if record is not None and record.gone_at is not None and record.gone_at <= now:
            del bucket[name]
            return None
        return record

    def live_jobs(self, namespace: str | None, now: float) -> Iterator[Record]:
        """Jobs of one namespace, or of all namespaces when ``namespace`` is None."""
        if namespace is None:
            namespaces = sorted(self.jobs)
        else:
            namespaces = [namespace] if namespace in self.jobs else []
        for ns in namespaces:
            if self.live_namespace(ns, now) is None:
                continue
            bucket = self.jobs.get(ns, {})
            for name in sorted(bucket):
                record = self.live_job(ns, name, now)
                if record is not None:
                    yield record

    def put_job(self, namespace: str, record: Record) -> None:
        self.jobs.setdefault(namespace, {})[record.name] = record

    def remove_job(self, namespace: str, name: str) -> None:
        self.jobs.get(namespace, {}).pop(name, None)

    def drop_jobs(self, namespace: str) -> None:
        """The namespace controller deletes all content as soon as termination starts."""
        self.jobs.pop(namespace, None)
