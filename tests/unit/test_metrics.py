"""The metrics: Prometheus naming, bounded labels, what the call sites count."""

from __future__ import annotations

import uuid

import fakeredis
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from producer import EksOps
from producer.settings import ProducerSettings
from worker import metrics, presence, queues
from worker.contracts import Operation
from worker.delivery import lanes
from worker.operations import apicalls
from worker.settings import QueueSettings

#: Labels that would grow without bound: never on a metric.
UNBOUNDED = {"request_id", "batch_id", "job", "job_name", "namespace", "name", "message_id"}


def test_every_metric_follows_prometheus_naming_with_bounded_labels() -> None:
    for metric in metrics.PER_PROCESS:
        (family,) = metric.describe()
        assert family.name.startswith("eksops_")
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_requests"))
        assert not set(metric._labelnames) & UNBOUNDED, family.name
    for name, (_help, labels) in metrics.FLEET_GAUGES.items():
        assert name.startswith("eksops_")
        assert not name.endswith("_total")
        assert not set(labels) & UNBOUNDED


def test_the_lane_labels_are_the_lanes_own_names() -> None:
    assert (metrics.lane(False), metrics.lane(True)) == (lanes.INTERACTIVE, lanes.BULK)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("POST", "/apis/batch/v1/namespaces/team-a/jobs", None, ("create", "jobs")),
        ("GET", "/apis/batch/v1/namespaces/team-a/jobs/my-job", None, ("get", "jobs")),
        ("GET", "/apis/batch/v1/namespaces/t/jobs/j/status", None, ("get", "jobs/status")),
        ("DELETE", "/api/v1/namespaces/team-a", None, ("delete", "namespaces")),
        ("GET", "/api/v1/namespaces/team-a", None, ("get", "namespaces")),
        ("POST", "/api/v1/namespaces", None, ("create", "namespaces")),
        ("GET", "/api/v1/namespaces/t/pods/p/log", None, ("get", "pods/log")),
        ("GET", "/apis/batch/v1/jobs", {"watch": "true"}, ("watch", "jobs")),
        ("GET", "/api/v1/pods", {"labelSelector": "a=b"}, ("list", "pods")),
        ("GET", "/api/v1/configmaps/x", None, ("get", "other")),
        ("GET", "/version", None, ("get", "discovery")),
        ("GET", "/apis", None, ("get", "discovery")),
    ],
)
def test_an_api_call_is_named_by_verb_and_resource_never_by_object(
    method: str, path: str, query: dict[str, str] | None, expected: tuple[str, str]
) -> None:
    assert apicalls.from_path(method, path, query) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("read_namespace", ("get", "namespaces")),
        ("create_namespaced_job", ("create", "jobs")),
        ("read_namespaced_job_status", ("get", "jobs/status")),
        ("read_namespaced_pod_log", ("get", "pods/log")),
        ("list_namespaced_event", ("list", "events")),
        ("delete_namespace", ("delete", "namespaces")),
        ("get_api_resources", ("get", "other")),
    ],
)
def test_a_generated_client_method_is_named_the_same_way(
    name: str, expected: tuple[str, str]
) -> None:
    assert apicalls.from_method(name) == expected


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_submissions_are_counted_once_per_new_request_by_operation_and_lane() -> None:
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    eksops = EksOps(
        settings=ProducerSettings(), queue=QueueSettings(redis_url="redis://x:6379/0"), redis=redis
    )
    counter = "eksops_requests_submitted_total"
    single = {"operation": "create_namespace", "lane": "interactive"}
    bulk = {"operation": "create_namespace", "lane": "bulk"}
    before = sample(counter, **single), sample(counter, **bulk)

    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "a"}, request_id=None)
    rid = "0b2c6f1e-8a4e-4b7e-9a55-0d8f3b1c2a77"
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "b"}, request_id=rid)
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "b"}, request_id=rid)  # duplicate
    items = [
        {"namespace_name": f"n-{index}", "request_id": str(uuid.uuid4())} for index in range(25)
    ]
    first = eksops.submit_many(Operation.CREATE_NAMESPACE, items)
    again = eksops.submit_many(Operation.CREATE_NAMESPACE, items[:5], batch_id=first.batch_id)
    assert again.accepted == 0  # the same five requests: duplicates

    after = sample(counter, **single), sample(counter, **bulk)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 25)


def test_the_fleet_collector_reports_the_backlog_workers_and_trackers() -> None:
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    eksops = EksOps(
        settings=ProducerSettings(), queue=QueueSettings(redis_url="redis://x:6379/0"), redis=redis
    )
    for name in ("a", "b", "c"):
        eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": name})
    presence.announce(redis, "w1@host")

    class Tracker:
        cluster = "prod@us-east-1"
        current = True
        age_seconds = 0.5

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.FleetCollector(lambda: queues.read(redis), lambda: [Tracker()]))
    text = generate_latest(registry).decode()
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("eksops_queue_messages", (("lane", "interactive"),))] == 3
    assert values[("eksops_queue_messages", (("lane", "bulk"),))] == 0
    assert values[("eksops_queue_oldest_age_seconds", (("lane", "interactive"),))] >= 0
    assert values[("eksops_workers_live", ())] == 1
    assert values[("eksops_tracker_watching", (("cluster", "prod@us-east-1"),))] == 1
    assert values[("eksops_tracker_lag_seconds", (("cluster", "prod@us-east-1"),))] == 0.5
    assert {name for name, _ in values} <= metrics.declared_names()
