"""/health reports the seed's fields, Redis and live workers, fast, and 503 without Redis."""

from __future__ import annotations

import time
from typing import Any

import anyio
import fakeredis
from fastapi.testclient import TestClient

from producer.gateway.health import HealthMonitor
from producer.gateway.settings import GatewaySettings
from tests.gateway.conftest import WorkerCount
from worker import fleet, presence
from worker.timestamps import now_iso


def test_health_reports_the_seed_fields_the_broker_and_live_workers(
    make_app: Any, workers: WorkerCount
) -> None:
    workers.value = 2
    app = make_app(eks_cluster_name="my-cluster", EKS_REGION="us-east-1")
    with TestClient(app) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "cluster": "my-cluster",
        "region": "us-east-1",
        "broker": "reachable",
        "workers": 2,
        "clusters": [],
        "trackers": [],
        "queues": {
            "lanes": [
                {
                    "lane": "interactive",
                    "waiting": 0,
                    "oldest_age_seconds": None,
                    "held": 0,
                    "groups": None,
                },
                {"lane": "bulk", "waiting": 0, "oldest_age_seconds": None, "held": 0, "groups": 0},
            ],
            "oldest_held_seconds": None,
            "live_workers": 0,
            "clusters": [],
        },
    }


def test_health_reports_what_waits_in_each_lane_and_for_how_long(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    for name in ("team-a", "team-b"):
        assert (
            client.post("/api/eks-create-namespace", json={"namespace_name": name}).status_code
            == 202
        )
    time.sleep(0.25)
    presence.announce(redis, "w1@host")

    queues = client.get("/health").json()["queues"]

    interactive, bulk = queues["lanes"]
    assert (interactive["lane"], interactive["waiting"], interactive["held"]) == (
        "interactive",
        2,
        0,
    )
    assert 0.25 <= interactive["oldest_age_seconds"] < 5
    assert (bulk["waiting"], bulk["oldest_age_seconds"]) == (0, None)
    assert queues["live_workers"] == 1


def test_a_failed_check_of_the_workers_cluster_access_degrades_health_and_names_the_step(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    # What a worker's preflight publishes when its credentials are gone.
    fleet.publish(
        redis,
        fleet.ClusterCheck(
            cluster="prod@us-east-1",
            ok=False,
            checked_at=now_iso(),
            worker="ip-10-0-0-7",
            interval_seconds=300,
            failed=["aws credentials"],
        ),
    )
    body = client.get("/health").json()
    assert body["status"] == "degraded"
    (access,) = body["clusters"]
    assert (access["cluster"], access["check"], access["failed"]) == (
        "prod@us-east-1",
        "fail",
        ["aws credentials"],
    )
    # No detail that could leak an identity on this public endpoint: step names only.
    assert set(access) == {"cluster", "worker", "check", "checked_at", "failed"}


def test_a_check_no_worker_has_repeated_for_three_intervals_reads_unknown(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    fleet.publish(
        redis,
        fleet.ClusterCheck(
            cluster="prod@us-east-1",
            ok=False,
            checked_at="2026-01-01T00:00:00+00:00",
            worker="gone",
            interval_seconds=60,
        ),
    )
    body = client.get("/health").json()
    assert body["clusters"][0]["check"] == "unknown"
    assert body["status"] == "healthy"


def test_without_live_workers_the_gateway_is_degraded_but_up(
    client: TestClient, workers: WorkerCount
) -> None:
    workers.value = 0
    response = client.get("/health")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["workers"]) == ("degraded", 0)


def test_with_redis_down_health_is_503_and_fast(
    client: TestClient, redis_server: fakeredis.FakeServer, workers: WorkerCount
) -> None:
    redis_server.connected = False
    started = time.monotonic()
    response = client.get("/health")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["broker"] == "unreachable"
    assert response.json()["workers"] is None
    assert workers.calls == 0


def test_the_worker_count_is_cached_between_checks(make_app: Any, workers: WorkerCount) -> None:
    with TestClient(make_app(gateway_health_cache_seconds=60)) as client:
        for _ in range(5):
            assert client.get("/health").json()["workers"] == 1
    assert workers.calls == 1


def test_the_worker_count_is_asked_again_once_the_cache_expires(
    make_app: Any, workers: WorkerCount
) -> None:
    with TestClient(make_app(gateway_health_cache_seconds=0)) as client:
        client.get("/health")
        workers.value = 3
        assert client.get("/health").json()["workers"] == 3
    assert workers.calls == 2


def test_a_failing_worker_ping_reads_as_unknown_not_as_an_error(
    client: TestClient, workers: WorkerCount
) -> None:
    workers.value = OSError("broker connection lost")
    response = client.get("/health")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["workers"]) == ("degraded", None)


def test_a_hanging_redis_is_abandoned_after_the_health_timeout(workers: WorkerCount) -> None:
    monitor = HealthMonitor(
        ping_redis=lambda: time.sleep(2),
        count_workers=workers,
        settings=GatewaySettings(gateway_health_timeout_seconds=0.2),
    )
    started = time.monotonic()
    report = anyio.run(monitor.report)
    assert time.monotonic() - started < 1.0
    assert (report.status, report.broker) == ("unhealthy", "unreachable")
