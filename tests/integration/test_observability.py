"""What operators see: every request in Flower, the worker's metrics, the backlog.

A worker of this module's own, on a Redis of its own (so the metrics it serves count
only this module's work), with ``WORKER_METRICS_PORT``; a real Flower process
(``celery -A producer.flower flower``) watching the same Redis; the session's cluster.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from devstack.services import free_port
from producer import EksOps
from producer.gateway import create_app
from producer.gateway.settings import GatewaySettings
from producer.settings import ProducerSettings
from tests.integration.conftest import Target, job_manifest
from tests.support.flower import FlowerProcess
from tests.support.processes import WorkerProcess, run_cli
from tests.support.redis_servers import RedisServer
from tests.support.waiting import wait_until
from worker.contracts import Operation
from worker.settings import QueueSettings

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("obs-redis"), appendfsync="everysec").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def flower(own_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowerProcess]:
    directory = tmp_path_factory.mktemp("flower")
    process = FlowerProcess({"REDIS_URL": own_redis}, directory / "flower.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def own_worker(
    target: Target,
    own_redis: str,
    metrics_port: int,
    flower: FlowerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        **target.env,
        "REDIS_URL": own_redis,
        "LOG_LEVEL": "INFO",
        "WORKER_METRICS_PORT": str(metrics_port),
        "WORKER_METRICS_ADDRESS": "127.0.0.1",
    }
    process = WorkerProcess(env, tmp_path_factory.mktemp("obs-worker") / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(own_redis: str, own_worker: WorkerProcess) -> Iterator[EksOps]:
    eksops = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=own_redis))
    yield eksops
    eksops.close()


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def wait_for_batch(eksops: EksOps, batch_id: str) -> None:
    def done() -> bool:
        status = eksops.batch(batch_id)
        return status is not None and status.done

    wait_until(done, timeout=90, interval=0.2, describe=lambda: eksops.batch(batch_id))


def flower_tasks(flower: FlowerProcess, ids: set[str], timeout: float = 30) -> dict[str, Any]:
    """Wait until Flower knows every one of ``ids`` in a final state; return them."""

    def every_one_ended() -> dict[str, Any] | None:
        tasks = flower.get("/api/tasks")
        found = {rid: tasks[rid] for rid in ids if rid in tasks}
        final = all(task["state"] in ("SUCCESS", "FAILURE") for task in found.values())
        return found if len(found) == len(ids) and final else None

    return wait_until(every_one_ended, timeout=timeout, interval=0.5)


def until_flower_listens(client: EksOps, flower: FlowerProcess) -> None:
    """Return once Flower receives events: its HTTP API answers before it subscribes."""
    for _ in range(20):
        probe = client.submit(
            Operation.GET_JOB_STATUS, {"job_name": "probe", "namespace": "default"}
        )
        try:
            flower_tasks(flower, {probe.request_id}, timeout=3)
        except AssertionError:
            continue
        return
    raise AssertionError("Flower never showed a task")


def test_every_request_of_a_burst_is_a_task_in_flower_and_the_metrics_count_each_exactly(
    client: EksOps, flower: FlowerProcess, target: Target, metrics_port: int
) -> None:
    until_flower_listens(client, flower)
    before = scrape(metrics_port)

    names = [f"it-{uuid.uuid4().hex[:10]}" for _ in range(60)]
    target.namespaces.update(names)
    good = client.submit_many(
        Operation.CREATE_NAMESPACE, [{"namespace_name": name} for name in names]
    )
    bad = client.submit_many(  # Jobs that do not exist: each delete fails with NotFound
        Operation.DELETE_JOB,
        [{"job_name": f"missing-{index}", "namespace": "default"} for index in range(90)],
    )
    wait_for_batch(client, good.batch_id)
    wait_for_batch(client, bad.batch_id)
    good_ids = {item.request_id for item in good.items if item.request_id}
    bad_ids = {item.request_id for item in bad.items if item.request_id}
    assert (len(good_ids), len(bad_ids)) == (60, 90)

    tasks = flower_tasks(flower, good_ids | bad_ids)

    assert {tasks[rid]["state"] for rid in good_ids} == {"SUCCESS"}
    assert {tasks[rid]["name"] for rid in good_ids} == {"eksops.create_namespace"}
    assert {tasks[rid]["state"] for rid in bad_ids} == {"FAILURE"}
    assert {tasks[rid]["name"] for rid in bad_ids} == {"eksops.delete_job"}
    one = sorted(bad_ids)[0]
    info = flower.get(f"/api/task/info/{one}")
    assert info["uuid"] == one
    assert info["state"] == "FAILURE"
    assert "NotFound" in info["exception"]
    assert "namespace=default" in info["kwargs"]
    assert info["kwargs"].startswith("job=missing-")
    assert info["parent_id"]  # the chunk that carried it
    chunk = flower.get(f"/api/task/info/{info['parent_id']}")
    assert (chunk["name"], chunk["state"]) == ("eksops.chunk", "FAILURE")
    assert "ChunkFailed" in chunk["exception"]
    assert "3 of 3 delete_job requests failed (0 succeeded, 0 skipped)" in chunk["exception"]
    # Flower's own filters: by state and by name, counting requests.
    failed = flower.get("/api/tasks", state="FAILURE", taskname="eksops.delete_job")
    assert set(failed) == bad_ids
    # Found by its request ID in Flower's search, as an operator would look it up.
    searched = flower.get("/api/tasks", search=one)
    assert one in searched

    after = scrape(metrics_port)
    bulk_create = {"operation": "create_namespace", "lane": "bulk"}
    bulk_delete = {"operation": "delete_job", "lane": "bulk"}
    assert delta(before, after, "eksops_requests_started_total", **bulk_create) == 60
    assert delta(before, after, "eksops_requests_started_total", **bulk_delete) == 90
    ended = "eksops_requests_ended_total"
    assert delta(before, after, ended, **bulk_create, outcome="succeeded") == 60
    assert delta(before, after, ended, **bulk_create, outcome="failed") == 0
    assert delta(before, after, ended, **bulk_delete, outcome="failed") == 90
    assert delta(before, after, "eksops_request_queued_seconds_count", **bulk_delete) == 90
    assert (
        delta(before, after, "eksops_request_run_seconds_count", **bulk_delete, outcome="failed")
        == 90
    )
    # 90 requests in chunks of 3, 60 in chunks of 2.
    assert delta(before, after, "eksops_chunk_requests_count", operation="delete_job") == 30
    assert delta(before, after, "eksops_chunk_requests_sum", operation="delete_job") == 90
    assert delta(before, after, "eksops_chunk_requests_count", operation="create_namespace") == 30
    k8s = "eksops_kubernetes_requests_total"
    assert delta(before, after, k8s, verb="delete", resource="jobs", code="404") == 90
    assert delta(before, after, k8s, verb="create", resource="namespaces", code="201") == 60
    assert (
        delta(
            before,
            after,
            "eksops_kubernetes_request_duration_seconds_count",
            verb="delete",
            resource="jobs",
        )
        == 90
    )
    assert (
        delta(
            before,
            after,
            "eksops_requests_started_total",
            operation="create_namespace",
            lane="interactive",
        )
        == 0
    )


def test_flowers_broker_page_and_queue_api_show_the_eksops_queue(
    client: EksOps, flower: FlowerProcess
) -> None:
    lengths = flower.get("/api/queues/length")
    assert {"name": "eksops", "messages": 0} in lengths["active_queues"]
    assert "eksops" in flower.page("/broker")


def test_flower_keeps_its_task_history_across_a_restart(
    client: EksOps, own_redis: str, tmp_path: Path
) -> None:
    db = tmp_path / "flower.db"
    first = FlowerProcess({"REDIS_URL": own_redis}, tmp_path / "flower.log", db=db).start()
    try:
        until_flower_listens(client, first)
        warm = client.submit(Operation.DELETE_JOB, {"job_name": "gone", "namespace": "default"})
        flower_tasks(first, {warm.request_id})
    finally:
        first.stop()
    second = FlowerProcess({"REDIS_URL": own_redis}, tmp_path / "flower.log", db=db).start()
    try:
        info = second.get(f"/api/task/info/{warm.request_id}")
        assert (info["name"], info["state"]) == ("eksops.delete_job", "FAILURE")
    finally:
        second.stop()


def test_health_and_the_cli_report_the_depth_and_age_of_what_was_enqueued(
    tmp_path: Path, target: Target
) -> None:
    # A Redis no worker consumes from: what was enqueued stays there.
    server = RedisServer(tmp_path / "redis", appendfsync="everysec").start()
    eksops = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=server.url))
    try:
        for index in range(3):
            eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": f"waiting-{index}"})
        time.sleep(1.0)
        eksops.submit_many(
            Operation.CREATE_NAMESPACE, [{"namespace_name": f"bulk-{i}"} for i in range(60)]
        )

        completed = run_cli(["queue", "--json"], {"REDIS_URL": server.url})
        assert completed.returncode == 0, completed.stderr
        report = json.loads(completed.stdout)
        interactive, bulk = report["lanes"]
        assert (interactive["lane"], interactive["waiting"], interactive["held"]) == (
            "interactive",
            3,
            0,
        )
        assert 1.0 <= interactive["oldest_age_seconds"] < 10
        assert (bulk["lane"], bulk["waiting"], bulk["groups"]) == ("bulk", 30, 1)
        assert bulk["oldest_age_seconds"] < interactive["oldest_age_seconds"]
        assert report["live_workers"] == 0

        text = run_cli(["queue"], {"REDIS_URL": server.url})
        assert text.returncode == 0, text.stderr
        assert "interactive" in text.stdout
        assert "Live workers: 0" in text.stdout

        app = create_app(
            GatewaySettings(), queue=QueueSettings(redis_url=server.url), count_workers=lambda: 0
        )
        with TestClient(app) as http:
            health = http.get("/health").json()
        assert health["status"] == "degraded"
        lanes = {lane["lane"]: lane for lane in health["queues"]["lanes"]}
        assert (lanes["interactive"]["waiting"], lanes["bulk"]["waiting"]) == (3, 30)
        assert lanes["interactive"]["oldest_age_seconds"] >= 1.0
    finally:
        eksops.close()
        server.stop()


def test_job_ends_are_counted_by_phase_and_reason_and_the_tracker_is_seen_watching(
    client: EksOps, own_redis: str, target: Target, metrics_port: int, sim: Any, namespace: str
) -> None:
    def ends(samples: Samples, phase: str) -> dict[str, float]:
        return {
            dict(labels)["reason"]: value
            for (name, labels), value in samples.items()
            if name == "eksops_job_outcomes_total" and dict(labels)["phase"] == phase
        }

    before = scrape(metrics_port)
    good = client.create_job(job_manifest("ends-well"), namespace=namespace)
    bad = client.create_job(
        job_manifest("ends-badly", **{"kubesim.eksops.io/outcome": "fail"}), namespace=namespace
    )
    for submission in (good, bad):
        assert client.wait_for_job(submission.request_id, 60, namespace=namespace).ended
    after = scrape(metrics_port)

    succeeded = {
        r: v - ends(before, "succeeded").get(r, 0.0) for r, v in ends(after, "succeeded").items()
    }
    failed = {r: v - ends(before, "failed").get(r, 0.0) for r, v in ends(after, "failed").items()}
    assert sum(succeeded.values()) == 1
    assert {r: v for r, v in failed.items() if v} == {"BackoffLimitExceeded": 1}

    app = create_app(
        GatewaySettings(), queue=QueueSettings(redis_url=own_redis), count_workers=lambda: 1
    )
    with TestClient(app) as http:
        text = http.get("/metrics").text
    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    watching = [v for (name, _), v in gauges.items() if name == "eksops_tracker_watching"]
    assert watching == [1.0]
    (lag,) = [v for (name, _), v in gauges.items() if name == "eksops_tracker_lag_seconds"]
    assert 0 <= lag < 10
    assert gauges[("eksops_workers_live", ())] == 1


def test_a_prefork_worker_serves_the_sum_of_its_children_with_prometheus_multiproc_dir(
    target: Target, tmp_path: Path, namespace: str
) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync="everysec").start()
    port = free_port()
    (tmp_path / "metrics").mkdir()
    stale = tmp_path / "metrics" / "counter_1.db"  # an earlier run's: removed at start
    stale.write_bytes(b"")
    env = {
        **target.env,
        "REDIS_URL": server.url,
        "LOG_LEVEL": "INFO",
        "WORKER_METRICS_PORT": str(port),
        "WORKER_METRICS_ADDRESS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "JOB_TRACKING": "false",
        "WORKER_POOL": "prefork",  # the setting wins over celery's --pool
    }
    worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2, pool="prefork")
    eksops = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=server.url))
    try:
        worker.start()
        submitted = [
            eksops.submit(Operation.DELETE_JOB, {"job_name": f"gone-{i}", "namespace": namespace})
            for i in range(6)
        ]
        for submission in submitted:
            assert eksops.wait(submission.request_id, 60).state.value == "failed"
        samples = scrape(port)
        key = (
            "eksops_requests_ended_total",
            (("lane", "interactive"), ("operation", "delete_job"), ("outcome", "failed")),
        )
        assert samples[key] == 6
        # Counted in the pool's children, served by the main process from their files.
        assert worker.process is not None
        writers = {int(f.stem.split("_")[1]) for f in (tmp_path / "metrics").glob("counter_*.db")}
        assert writers - {worker.process.pid}  # the children (the main process checks the cluster)
        assert 1 not in writers
    finally:
        eksops.close()
        worker.stop()
        server.stop()


def test_the_task_events_of_single_requests_are_published_together(
    client: EksOps, own_redis: str, target: Target
) -> None:
    listener = redis.Redis.from_url(own_redis).pubsub(ignore_subscribe_messages=True)
    listener.psubscribe("*celeryev*")
    names = [f"it-{uuid.uuid4().hex[:10]}" for _ in range(10)]
    target.namespaces.update(names)
    ids = {
        client.submit(Operation.CREATE_NAMESPACE, {"namespace_name": name}).request_id
        for name in names
    }
    for rid in ids:
        assert client.wait(rid, 30).state.value == "succeeded"
    publishes, events = 0, []
    deadline = time.monotonic() + 3  # the last flush comes within FLUSH_SECONDS
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.2)
        if message is None or message["type"] != "pmessage":
            continue
        envelope = json.loads(message["data"])
        body = json.loads(base64.b64decode(envelope["body"]))
        publishes += 1
        events += body if isinstance(body, list) else [body]
    listener.close()
    kinds: dict[str, set[str]] = {}
    for event in events:
        if event.get("uuid") in ids:
            kinds.setdefault(event["uuid"], set()).add(event["type"])
    assert set(kinds) == ids
    assert all({"task-received", "task-succeeded"} <= seen for seen in kinds.values())
    # Celery alone publishes about one message per event; together, several in each.
    assert publishes * 3 <= len(events), (publishes, len(events))
