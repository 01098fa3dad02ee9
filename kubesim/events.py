"""Events: what the controllers and the kubelet record, and how long they are kept.

``Recorder.emit`` builds a ``core/v1`` Event the way client-go's legacy recorder
does (``tools/record/event.go`` ``makeEvent``: name ``<object>.<hex unix nanos>``,
``firstTimestamp`` = ``lastTimestamp``, ``count`` 1, ``source`` and
``reportingComponent``/``reportingInstance`` from the recorder's source); a repeat
of the same reason and message for the same object bumps ``count`` and
``lastTimestamp`` instead of adding an Event (``events_cache.go``). The scheduler
records through ``events.k8s.io/v1`` (``eventTime``, ``action``, no timestamps), as
kube-scheduler does.

Events expire ``event_ttl`` seconds after their last update (kube-apiserver's
``--event-ttl``, 1 h) and the oldest go first when more than ``event_limit`` exist,
so a benchmark of 100,000 Jobs keeps memory bounded. ``to_events_v1`` is the
``events.k8s.io/v1`` view of the same stored object (``pkg/apis/events/v1``
conversion: ``regarding``, ``note``, ``deprecated*``).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubesim.config import SimConfig
from kubesim.store import JSON, Key, Store, rfc3339, rfc3339_micro
from kubesim.timers import Timers

NORMAL, WARNING = "Normal", "Warning"
_EXPIRY_KEY = ("events", "expiry")
_last_nanos = [0]
_SIMILAR_CACHE = 4096
Similar = tuple[str, str, str, str]


def reference(obj: JSON, field_path: str = "") -> JSON:
    """``v1.ObjectReference`` of ``obj`` (``reference.GetReference``)."""
    meta = obj["metadata"]
    ref: JSON = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", "")}
    ref["name"] = meta["name"]
    ref["uid"] = meta.get("uid", "")
    ref["apiVersion"] = obj.get("apiVersion", "")
    ref["resourceVersion"] = meta.get("resourceVersion", "")
    if field_path:
        ref["fieldPath"] = field_path
    if not ref["namespace"]:
        del ref["namespace"]
    return ref


@dataclass(slots=True, eq=False)
class _Pending:
    """An Event recorded while nobody watches events: written when someone reads them."""

    ref: JSON
    legacy: bool
    """``core/v1`` recorder (``source``, ``count``) or ``events.k8s.io`` (``series``)."""
    type: str
    reason: str
    message: str
    component: str
    host: str
    action: str
    similar: Similar
    suffix: str
    first: float
    last: float
    count: int = 1
    alive: bool = True


class Recorder:
    """Creates and de-duplicates Events, and expires them.

    Events are written lazily: while no watch on events is open, an Event is kept
    as a small pending record (de-duplicated and bounded like a stored one) and
    written to the store - in the order it was recorded, with the timestamps and
    name it was recorded with - the moment anything reads events
    (``Store.flush("events")``: a get, list or watch of events, the namespace
    controller, a save). Client-go's recorder writes Events asynchronously too, so
    their resourceVersions trailing the objects they are about is what a real
    cluster shows. With an events watch open they are written at once.
    """

    def __init__(
        self,
        store: Store,
        config: SimConfig,
        timers: Timers,
        watched: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.timers = timers
        self.watched = watched or (lambda: True)
        """Whether events must be written at once (an events watch is open)."""
        self._similar: OrderedDict[Similar, Key | _Pending] = OrderedDict()
        self._order: OrderedDict[Key, float] = OrderedDict()
        """Event keys by last update, oldest first: what expiry and the limit trim."""
        self._pending: deque[_Pending] = deque()
        self._armed_for = 0.0
        store.lazy["events"] = self.flush

    def reset(self) -> None:
        self._similar.clear()
        self._order.clear()
        self._pending.clear()
        self._armed_for = 0.0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def adopt(self, event: JSON) -> None:
        """Track a restored or user-created Event for expiry."""
        meta = event["metadata"]
        key = (meta["namespace"], meta["name"])
        self._order[key] = _updated_at(event)
        self._order.move_to_end(key)
        self._schedule()

    def emit(
        self,
        obj: JSON,
        kind: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
        now: float | None = None,
    ) -> None:
        """Record an Event about ``obj`` as the legacy recorder of ``component`` does."""
        now = time.time() if now is None else now
        ref = reference(obj, field_path)
        similar = (ref["uid"], field_path, reason, message)
        if self._bump(similar, now, legacy=True):
            return
        record = _Pending(
            ref,
            True,
            kind,
            reason,
            message,
            component,
            host,
            "",
            similar,
            _event_suffix(now),
            now,
            now,
        )
        self._record(record)

    def emit_v1(
        self,
        obj: JSON,
        kind: str,
        reason: str,
        action: str,
        note: str,
        *,
        controller: str,
        instance: str,
        now: float | None = None,
    ) -> None:
        """Record through ``events.k8s.io/v1`` (``eventTime`` + ``action``), as the scheduler."""
        now = time.time() if now is None else now
        ref = reference(obj)
        similar = (ref["uid"], action, reason, note)
        if self._bump(similar, now, legacy=False):
            return
        record = _Pending(
            ref,
            False,
            kind,
            reason,
            note,
            controller,
            instance,
            action,
            similar,
            _event_suffix(now),
            now,
            now,
        )
        self._record(record)

    def _bump(self, similar: Similar, now: float, *, legacy: bool) -> bool:
        """A repeat of a recent Event: count it on that one (True) or not (False)."""
        found = self._similar.get(similar)
        if found is None:
            return False
        if isinstance(found, _Pending):
            if not found.alive:
                return False
            found.count += 1
            found.last = now
            return True
        existing = self.store.get("events", *found)
        if existing is None:
            return False
        if not legacy:
            series = existing.get("series") or {"count": 1}
            bumped = {
                **existing,
                "series": {"count": int(series["count"]) + 1, "lastObservedTime": _micro(now)},
            }
        else:
            bumped = {
                **existing,
                "count": int(existing.get("count") or 1) + 1,
                "lastTimestamp": rfc3339(now),
            }
        self.store.commit("events", bumped)
        self._touch(found, now)
        return True

    def _record(self, record: _Pending) -> None:
        similar = self._similar
        similar[record.similar] = record
        if len(similar) > _SIMILAR_CACHE:
            similar.popitem(last=False)
        if self.watched():
            self.flush()
            self._write(record)
            return
        pending = self._pending
        pending.append(record)
        limit = max(1, int(self.config.event_limit))
        while len(self._order) + len(pending) > limit:
            if self._order:
                key, _ = self._order.popitem(last=False)
                self._delete(key)
            else:
                pending.popleft().alive = False

    def flush(self) -> None:
        """Write every pending Event (in recorded order); expired ones are dropped."""
        if not self._pending:
            return
        cutoff = time.time() - self.config.event_ttl
        pending, self._pending = self._pending, deque()
        for record in pending:
            if record.alive:
                record.alive = False
                if record.last > cutoff:
                    self._write(record)

    def _write(self, record: _Pending) -> None:
        event = _materialise(record, self.store.new_uid())
        meta = event["metadata"]
        key = (meta["namespace"], meta["name"])
        self.store.commit("events", event)
        if self._similar.get(record.similar) is record:
            self._similar[record.similar] = key
        self._touch(key, record.last)
        self._trim()

    def _touch(self, key: Key, now: float) -> None:
        self._order[key] = now
        self._order.move_to_end(key)
        self._schedule()

    def forget(self, key: Key) -> None:
        self._order.pop(key, None)

    def _trim(self) -> None:
        limit = max(1, int(self.config.event_limit))
        while len(self._order) > limit:
            key, _ = self._order.popitem(last=False)
            self._delete(key)

    def _schedule(self) -> None:
        if not self._order:
            return
        oldest = next(iter(self._order.values()))
        when = oldest + self.config.event_ttl
        if when != self._armed_for:
            self._armed_for = when
            self.timers.at(when, _EXPIRY_KEY, self._expire)

    def _expire(self, now: float) -> None:
        self._armed_for = 0.0
        cutoff = now - self.config.event_ttl
        while self._order:
            key, updated = next(iter(self._order.items()))
            if updated > cutoff:
                break
            self._order.popitem(last=False)
            self._delete(key)
        self._schedule()

    def _delete(self, key: Key) -> None:
        if self.store.get("events", *key) is not None:
            self.store.commit("events", None, key=key)


def _materialise(record: _Pending, uid: str) -> JSON:
    """The stored Event of a record: what the eager recorder would hold by now."""
    ref = record.ref
    first = record.first
    metadata = {
        "name": f"{ref['name']}.{record.suffix}",
        "namespace": ref.get("namespace") or "default",
        "uid": uid,
        "resourceVersion": "",
        "creationTimestamp": rfc3339(first),
    }
    if record.legacy:
        source: JSON = {"component": record.component}
        if record.host:
            source["host"] = record.host
        return {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": metadata,
            "involvedObject": ref,
            "reason": record.reason,
            "message": record.message,
            "source": source,
            "firstTimestamp": rfc3339(first),
            "lastTimestamp": rfc3339(record.last),
            "count": record.count,
            "type": record.type,
            "eventTime": None,
            "reportingComponent": record.component,
            "reportingInstance": record.host,
        }
    event: JSON = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": metadata,
        "involvedObject": ref,
        "reason": record.reason,
        "message": record.message,
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": record.type,
        "eventTime": _micro(first),
        "action": record.action,
        "reportingComponent": record.component,
        "reportingInstance": record.host,
    }
    if record.count > 1:
        event["series"] = {"count": record.count, "lastObservedTime": _micro(record.last)}
    return event


def _updated_at(event: JSON) -> float:
    stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
    stamp = stamp or event["metadata"].get("creationTimestamp") or ""
    try:
        return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return time.time()


def _event_suffix(now: float) -> str:
    # unique even for events recorded at the same moment (kubesim stamps planned times)
    value = max(_last_nanos[0] + 1, int(now * 1e9))
    _last_nanos[0] = value
    return f"{value:x}"


def _micro(now: float) -> str:
    return rfc3339_micro(now)


def to_events_v1(event: JSON) -> JSON:
    """The ``events.k8s.io/v1`` shape of a stored core Event."""
    out: JSON = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": event["metadata"]}
    out["eventTime"] = event.get("eventTime")
    if event.get("series"):
        out["series"] = event["series"]
    for source, target in (
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("type", "type"),
    ):
        value = event.get(source)
        if value:
            out[target] = value
    if event.get("source"):
        out["deprecatedSource"] = event["source"]
    for source, target in (
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
    ):
        if event.get(source):
            out[target] = event[source]
    if event.get("count"):
        out["deprecatedCount"] = event["count"]
    return out


def from_events_v1(body: JSON) -> JSON:
    """A core Event from an ``events.k8s.io/v1`` body (create/update through that API)."""
    out: JSON = {"kind": "Event", "apiVersion": "v1", "metadata": body.get("metadata") or {}}
    mapping: dict[str, Any] = {
        "regarding": "involvedObject",
        "note": "message",
        "reportingController": "reportingComponent",
        "reportingInstance": "reportingInstance",
        "deprecatedSource": "source",
        "deprecatedFirstTimestamp": "firstTimestamp",
        "deprecatedLastTimestamp": "lastTimestamp",
        "deprecatedCount": "count",
    }
    for key, value in body.items():
        if key in ("kind", "apiVersion", "metadata"):
            continue
        out[mapping.get(key, key)] = value
    out.setdefault("involvedObject", {})
    return out
