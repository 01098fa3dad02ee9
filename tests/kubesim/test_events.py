"""Events: held back while nobody reads them, then written as the eager recorder would."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client as k8s

from kubesim import AdminClient
from kubesim.config import SimConfig
from kubesim.events import NORMAL, WARNING, Recorder
from kubesim.store import JSON, Store
from kubesim.timers import Timers

from .conftest import job_manifest
from .helpers import eventually
from .test_watch import watch

POD: JSON = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
}


def _recorder(*, watched: bool, **settings: Any) -> tuple[Store, Recorder]:
    config = SimConfig()
    config.update(settings)
    store = Store()
    return store, Recorder(store, config, Timers(), watched=lambda: watched)


def _story(recorder: Recorder, start: float) -> None:
    """Repeats, both recorders, two objects: what a kubelet and a scheduler record."""
    other = {**POD, "metadata": {**POD["metadata"], "name": "q", "uid": "u-2"}}
    recorder.emit(POD, NORMAL, "Pulled", "already present", component="kubelet", now=start)
    recorder.emit_v1(
        POD, NORMAL, "Scheduled", "Binding", "assigned", controller="s", instance="i", now=start
    )
    recorder.emit(other, WARNING, "BackOff", "back-off", component="kubelet", now=start + 1)
    recorder.emit(other, WARNING, "BackOff", "back-off", component="kubelet", now=start + 2)
    recorder.emit_v1(
        POD, NORMAL, "Scheduled", "Binding", "assigned", controller="s", instance="i", now=start + 3
    )


def _stored(store: Store) -> list[JSON]:
    """Events in the order they were created, without what differs run to run."""
    events = sorted(store.items("events"), key=lambda e: int(e["metadata"]["name"][2:], 16))
    out = []
    for event in events:
        meta = {
            k: v
            for k, v in event["metadata"].items()
            if k not in ("uid", "resourceVersion", "name")
        }
        out.append({**event, "metadata": meta})
    return out


def test_events_wait_until_read_and_then_look_as_if_written_at_once() -> None:
    start = time.time()
    eager_store, eager = _recorder(watched=True)
    lazy_store, lazy = _recorder(watched=False)
    _story(eager, start)
    _story(lazy, start)

    assert lazy_store.count("events") == 0
    assert lazy.pending == 3
    lazy_store.flush("events")

    assert lazy.pending == 0
    assert _stored(lazy_store) == _stored(eager_store)
    (_, scheduled, backoff) = _stored(lazy_store)
    assert scheduled["series"]["count"] == 2
    assert backoff["count"] == 2
    assert backoff["firstTimestamp"] != backoff["lastTimestamp"]
    names = [e["metadata"]["name"] for e in lazy_store.items("events")]
    assert len(set(names)) == 3


def test_written_events_keep_the_order_they_were_recorded_in() -> None:
    store, recorder = _recorder(watched=False)
    now = time.time()
    for index in range(5):
        recorder.emit(POD, NORMAL, "Step", f"step {index}", component="kubelet", now=now + index)
    store.flush("events")
    by_version = sorted(store.items("events"), key=lambda e: int(e["metadata"]["resourceVersion"]))
    assert [e["message"] for e in by_version] == [f"step {i}" for i in range(5)]
    assert [e["metadata"]["name"] for e in by_version] == sorted(
        (e["metadata"]["name"] for e in by_version), key=lambda n: int(n.split(".")[1], 16)
    )


def test_a_repeat_of_a_written_event_bumps_the_stored_one() -> None:
    store, recorder = _recorder(watched=False)
    now = time.time()
    recorder.emit(POD, NORMAL, "Pulled", "present", component="kubelet", now=now)
    store.flush("events")
    recorder.emit(POD, NORMAL, "Pulled", "present", component="kubelet", now=now + 5)
    (event,) = store.items("events")
    assert event["count"] == 2
    assert recorder.pending == 0


def test_the_limit_and_the_ttl_hold_for_pending_events() -> None:
    store, recorder = _recorder(watched=False, event_limit=3, event_ttl=60.0)
    now = time.time()
    recorder.emit(POD, NORMAL, "Old", "expired", component="kubelet", now=now - 120)
    for index in range(5):
        recorder.emit(POD, NORMAL, "New", f"n{index}", component="kubelet", now=now)
    assert recorder.pending == 3
    store.flush("events")
    assert sorted(e["message"] for e in store.items("events")) == ["n2", "n3", "n4"]

    recorder.emit(POD, NORMAL, "New", "n5", component="kubelet", now=now)
    assert store.count("events") + recorder.pending == 3


def test_once_events_are_watched_the_held_ones_go_first() -> None:
    watched = [False]
    store = Store()
    recorder = Recorder(store, SimConfig(), Timers(), watched=lambda: watched[0])
    now = time.time()
    recorder.emit(POD, NORMAL, "First", "1", component="kubelet", now=now)
    watched[0] = True
    recorder.emit(POD, NORMAL, "Second", "2", component="kubelet", now=now)
    by_version = sorted(store.items("events"), key=lambda e: int(e["metadata"]["resourceVersion"]))
    assert [e["reason"] for e in by_version] == ["First", "Second"]
    assert recorder.pending == 0


def test_an_events_watch_sees_a_jobs_events_as_they_happen(
    api_client: Any, admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    reasons: list[str] = []

    def follow() -> None:
        path = f"/api/v1/namespaces/{namespace}/events"
        for event in watch(api_client, path, timeoutSeconds="10", resourceVersion="0"):
            reasons.append(event["object"]["reason"])
            if "Started" in reasons:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    eventually(lambda: admin.open_watches() == 1)
    batch.create_namespaced_job(namespace, job_manifest("watched"))
    reader.join(timeout=15)
    assert reasons[:2] == ["SuccessfulCreate", "Scheduled"]
    assert "Started" in reasons


def test_a_list_of_events_shows_what_was_recorded_so_far(
    core: k8s.CoreV1Api, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("listed"))
    found = eventually(
        lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "Scheduled"]
    )
    (scheduled,) = found
    listed = core.list_namespaced_event(namespace)
    versions = [int(e.metadata.resource_version) for e in listed.items]
    assert max(versions) <= int(listed.metadata.resource_version)
    assert scheduled.involved_object.kind == "Pod"
