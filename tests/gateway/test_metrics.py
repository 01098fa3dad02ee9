"""GET /metrics: Prometheus's text format, this process's series and the fleet gauges."""

from __future__ import annotations

import fakeredis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from worker import metrics


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


SUBMITTED = (
    "eksops_requests_submitted_total",
    (("lane", "interactive"), ("operation", "create_namespace")),
)
WAITING = ("eksops_queue_messages", (("lane", "interactive"),))


def test_metrics_count_what_the_gateway_submitted_and_what_waits(
    client: TestClient, redis: fakeredis.FakeRedis
) -> None:
    before = scrape(client)
    for name in ("team-a", "team-b", "team-c"):
        response = client.post("/api/eks-create-namespace", json={"namespace_name": name})
        assert response.status_code == 202
    after = scrape(client)

    assert after[SUBMITTED] - before.get(SUBMITTED, 0.0) == 3
    assert (before[WAITING], after[WAITING]) == (0, 3)
    assert after[("eksops_queue_oldest_age_seconds", (("lane", "interactive"),))] >= 0
    assert after[("eksops_workers_live", ())] == 0


def test_every_series_served_is_declared_once_in_worker_metrics(client: TestClient) -> None:
    client.post("/api/eks-create-namespace", json={"namespace_name": "team-a"})
    served = {name for name, _ in scrape(client) if name.startswith("eksops_")}
    assert served
    assert served <= metrics.declared_names()
