"""Watches: initial events, resuming, bookmarks, 410 Gone, selectors, timeouts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s

from kubesim import AdminClient

from .conftest import job_manifest
from .helpers import eventually


def watch(api_client: Any, path: str, **query: str) -> Iterator[dict[str, Any]]:
    """The events of a watch stream, parsed, as the server sends them."""
    params = [("watch", "true"), *query.items()]
    serialized = api_client.param_serialize(
        "GET",
        path,
        query_params=params,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized, _request_timeout=20)
    buffer = b""
    for chunk in response.response.stream(1024, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def take(events: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [next(events) for _ in range(count)]


def test_a_watch_without_a_version_starts_with_what_exists(api_client: Any) -> None:
    events = watch(api_client, "/api/v1/namespaces", timeoutSeconds="5")
    first = take(events, 4)
    assert [e["type"] for e in first] == ["ADDED"] * 4
    assert {e["object"]["metadata"]["name"] for e in first} == {
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    }


def test_a_watch_from_a_list_version_sees_later_changes_in_order(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    listed = batch.list_namespaced_job(namespace)
    events = watch(
        api_client,
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        resourceVersion=listed.metadata.resource_version,
        timeoutSeconds="5",
    )
    batch.create_namespaced_job(namespace, job_manifest("w1"))
    seen = take(events, 2)
    assert [e["type"] for e in seen] == ["ADDED", "MODIFIED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert versions == sorted(versions)
    assert versions[0] > int(listed.metadata.resource_version)


def test_resuming_from_a_version_replays_what_happened_since(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    created = batch.create_namespaced_job(namespace, job_manifest("r1"))
    events = watch(
        api_client,
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        resourceVersion=created.metadata.resource_version,
        timeoutSeconds="5",
    )
    first = next(events)
    assert first["type"] == "MODIFIED"
    assert first["object"]["metadata"]["name"] == "r1"


def test_a_version_older_than_the_history_gets_an_expired_error_event(
    api_client: Any, admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("old"))
    compacted = admin.compact_history()
    (event,) = list(
        watch(
            api_client,
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            resourceVersion="1",
            timeoutSeconds="5",
        )
    )
    assert event["type"] == "ERROR"
    assert event["object"] == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: 1 ({compacted})",
        "reason": "Expired",
        "code": 410,
    }


def test_bookmarks_and_initial_events_end(api_client: Any, admin: AdminClient) -> None:
    admin.configure(bookmark_interval=0.1)
    events = watch(
        api_client,
        "/api/v1/namespaces",
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        resourceVersion="",
        allowWatchBookmarks="true",
        timeoutSeconds="5",
    )
    first = take(events, 6)
    assert [e["type"] for e in first[:4]] == ["ADDED"] * 4
    assert first[4]["type"] == "BOOKMARK"
    assert first[4]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert first[5]["type"] == "BOOKMARK"
    assert set(first[5]["object"]) == {"kind", "apiVersion", "metadata"}


def test_label_selected_watches_see_objects_enter_and_leave(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    events = watch(
        api_client,
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        labelSelector="team=blue",
        resourceVersion=batch.list_namespaced_job(namespace).metadata.resource_version,
        timeoutSeconds="5",
    )
    batch.create_namespaced_job(namespace, job_manifest("other"))
    batch.create_namespaced_job(namespace, job_manifest("sel", labels={"team": "blue"}))
    batch.patch_namespaced_job("sel", namespace, {"metadata": {"labels": {"team": "red"}}})
    seen: list[dict[str, Any]] = []
    for event in events:
        seen.append(event)
        if event["type"] == "DELETED":
            break
    assert {e["object"]["metadata"]["name"] for e in seen} == {"sel"}
    assert seen[0]["type"] == "ADDED"
    assert seen[-1]["type"] == "DELETED"


def test_watches_end_at_timeout_seconds(api_client: Any) -> None:
    events = list(
        watch(api_client, "/api/v1/namespaces", timeoutSeconds="1", resourceVersion="999999")
    )
    assert events == []


def test_the_legacy_watch_path_and_closing_every_watch(api_client: Any, admin: AdminClient) -> None:
    done: list[int] = []

    def run() -> None:
        done.append(len(list(watch(api_client, "/api/v1/watch/namespaces", timeoutSeconds="30"))))

    thread = threading.Thread(target=run)
    thread.start()
    eventually(lambda: admin.open_watches() == 1)
    assert admin.close_watches() == 1
    thread.join(5)
    assert done == [4]


def test_watch_requests_are_counted_with_verb_watch(api_client: Any, admin: AdminClient) -> None:
    admin.clear_counters()
    list(watch(api_client, "/api/v1/namespaces", timeoutSeconds="1", resourceVersion="999999"))
    assert admin.count("watch", "namespaces") == 1
