"""GET /api/events: transitions as Server-Sent Events, filtered, resumable by ID."""

from __future__ import annotations

import json
import uuid
from typing import Any

import fakeredis
from fastapi.testclient import TestClient

from worker import events

BATCH = str(uuid.uuid4())


def emit(redis: fakeredis.FakeRedis, count: int, batch: str | None = BATCH) -> list[str]:
    ids = []
    for index in range(count):
        events.append_request(
            redis,
            request_id=str(uuid.UUID(int=index + 1)),
            batch_id=batch,
            state="succeeded",
            at="2026-12-01T00:00:00+00:00",
        )
        ids.append(redis.xrevrange(events.STREAM_KEY, count=1)[0][0].decode())
    return ids


def read_events(client: TestClient, count: int, **kwargs: Any) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/api/events", **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    found.append(current)
                    if len(found) == count:
                        break
                current = {}
                continue
            field, _, value = line.partition(":")
            current[field] = value.strip()
    return found


def test_a_batchs_events_stream_as_sse_with_their_stream_ids(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    emit(redis, 2, batch=str(uuid.uuid4()))  # another batch's
    ids = emit(redis, 3)
    got = read_events(client, 3, params={"after": "0", "batch_id": BATCH})
    assert [event["id"] for event in got] == ids
    assert {event["event"] for event in got} == {"request"}
    assert json.loads(got[0]["data"])["batch_id"] == BATCH


def test_a_client_resumes_after_the_last_event_it_saw(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    ids = emit(redis, 4)
    got = read_events(client, 2, headers={"Last-Event-ID": ids[1]}, params={"batch_id": BATCH})
    assert [event["id"] for event in got] == ids[2:]


def test_a_position_that_is_not_an_event_id_is_a_422(client: TestClient) -> None:
    response = client.get("/api/events", params={"after": "yesterday"})
    assert response.status_code == 422
    assert "not an event ID" in response.json()["detail"]
