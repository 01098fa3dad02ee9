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
from collections import OrderedDict
from typing import Any

from kubesim.config import SimConfig
from kubesim.store import JSON, Key, Store, rfc3339, rfc3339_micro
from kubesim.timers import Timers

NORMAL, WARNING = "Normal", "Warning"
_EXPIRY_KEY = ("events", "expiry")
_last_nanos = [0]


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


class Recorder:
    """Creates and de-duplicates Events, and expires them."""

    def __init__(self, store: Store, config: SimConfig, timers: Timers) -> None:
        self.store = store
        self.config = config
        self.timers = timers
        self._similar: OrderedDict[tuple[str, str, str, str], Key] = OrderedDict()
        self._order: OrderedDict[Key, float] = OrderedDict()
        """Event keys by last update, oldest first: what expiry and the limit trim."""
        self._armed_for = 0.0

    def reset(self) -> None:
        self._similar.clear()
        self._order.clear()
        self._armed_for = 0.0

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
        namespace = ref.get("namespace") or "default"
        similar = (ref["uid"], field_path, reason, message)
        existing_key = self._similar.get(similar)
        if existing_key is not None:
            existing = self.store.get("events", *existing_key)
            if existing is not None:
                bumped = {
                    **existing,
                    "count": int(existing.get("count") or 1) + 1,
                    "lastTimestamp": rfc3339(now),
                }
                self.store.commit("events", bumped)
                self._touch(existing_key, now)
                return
        source: JSON = {"component": component}
        if host:
            source["host"] = host
        name = f"{ref['name']}.{_event_suffix(now)}"
        event: JSON = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": self.store.new_uid(),
                "resourceVersion": "",
                "creationTimestamp": rfc3339(now),
            },
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
            "type": kind,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        self._store_new(event, similar, now)

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
        existing_key = self._similar.get(similar)
        if existing_key is not None and self.store.get("events", *existing_key) is not None:
            existing = self.store.get("events", *existing_key)
            assert existing is not None
            series = existing.get("series") or {"count": 1}
            bumped = {
                **existing,
                "series": {"count": int(series["count"]) + 1, "lastObservedTime": _micro(now)},
            }
            self.store.commit("events", bumped)
            self._touch(existing_key, now)
            return
        event: JSON = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": f"{ref['name']}.{_event_suffix(now)}",
                "namespace": ref.get("namespace") or "default",
                "uid": self.store.new_uid(),
                "resourceVersion": "",
                "creationTimestamp": rfc3339(now),
            },
            "involvedObject": ref,
            "reason": reason,
            "message": note,
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "type": kind,
            "eventTime": _micro(now),
            "action": action,
            "reportingComponent": controller,
            "reportingInstance": instance,
        }
        self._store_new(event, similar, now)

    def _store_new(self, event: JSON, similar: tuple[str, str, str, str], now: float) -> None:
        key = (event["metadata"]["namespace"], event["metadata"]["name"])
        self.store.commit("events", event)
        self._similar[similar] = key
        if len(self._similar) > 4096:
            self._similar.popitem(last=False)
        self._touch(key, now)
        self._trim(now)

    def _touch(self, key: Key, now: float) -> None:
        self._order[key] = now
        self._order.move_to_end(key)
        self._schedule()

    def forget(self, key: Key) -> None:
        self._order.pop(key, None)

    def _trim(self, now: float) -> None:
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
