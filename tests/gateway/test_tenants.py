"""Tenants over the gateway (fakeredis): keys, scope, quotas, policy, isolation, audit."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from producer import EksOps
from producer.audit import AUDIT_LOGGER
from producer.gateway.keyring import key_hash
from producer.quotas import open_key
from producer.settings import ProducerSettings
from tests.gateway.conftest import JOB_CREATED, JOB_MANIFEST, Worker, new_id
from worker.contracts import TENANT_LABEL
from worker.errors import OutOfScope
from worker.records import record_key
from worker.settings import QueueSettings
from worker.tenants import Scope, Tenant

KEY_A = "team-a-key-0123456789abcdef"
KEY_A2 = "team-a-key-rotated-0123456789"
KEY_B = "team-b-key-0123456789abcdef"
LEGACY = "legacy-admin-key-0123456789"

A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}


def keys_yaml(**extra_a: Any) -> str:
    a: dict[str, Any] = {
        "keys": [{"id": "a-1", "sha256": key_hash(KEY_A)}],
        "scope": {
            "clusters": ["default"],
            "namespaces": ["team-a", "team-a-*"],
            "operations": [
                "create_job",
                "get_job_status",
                "delete_job",
                "create_namespace",
                "get_job_logs",
            ],
        },
        **extra_a,
    }
    b = {
        "keys": [{"id": "b-1", "sha256": key_hash(KEY_B)}],
        "scope": {"namespaces": ["team-b"]},
    }
    return json.dumps({"tenants": {"team-a": a, "team-b": b}})


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(keys_yaml())
    return path


@pytest.fixture
def tenants_app(make_app: Callable[..., FastAPI], keys_file: Path) -> Callable[..., TestClient]:
    def build(**overrides: Any) -> TestClient:
        return TestClient(make_app(gateway_keys_file=keys_file, **overrides))

    return build


@pytest.fixture
def gw(tenants_app: Callable[..., TestClient]) -> Iterator[TestClient]:
    with tenants_app(gateway_api_keys=LEGACY) as client:
        yield client


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        yield lambda: [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


def job(namespace: str, **spec: Any) -> dict[str, Any]:
    manifest = json.loads(json.dumps(JOB_MANIFEST))
    manifest["spec"].update(spec)
    return {"job_manifest": manifest, "namespace": namespace}


def touch(path: Path, text: str) -> None:
    """Rewrite the keys file so that its stamp surely changes, and let the recheck pass."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))
    time.sleep(1.05)


# --- principals ------------------------------------------------------------------


def test_a_tenant_key_submits_and_the_record_names_its_tenant(
    gw: TestClient, redis: fakeredis.FakeRedis
) -> None:
    response = gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
    assert response.status_code == 202, response.text
    rid = response.json()["request_id"]
    assert redis.hget(record_key(rid), "tenant") == b"team-a"
    status = gw.get(f"/api/tasks/{rid}", headers=A).json()
    assert status["tenant"] == "team-a"


def test_the_legacy_keys_stay_one_unrestricted_tenant(
    gw: TestClient, redis: fakeredis.FakeRedis
) -> None:
    headers = {"X-API-Key": LEGACY}
    response = gw.post("/api/eks-create-namespace", json={"namespace_name": "any"}, headers=headers)
    assert response.status_code == 202
    rid = response.json()["request_id"]
    assert redis.hget(record_key(rid), "tenant") is None
    a_rid = gw.post("/api/eks-create-job", json=job("team-a"), headers=A).json()["request_id"]
    assert gw.get(f"/api/tasks/{a_rid}", headers=headers).status_code == 200


def test_an_unknown_key_is_401(gw: TestClient) -> None:
    response = gw.get(f"/api/tasks/{new_id()}", headers={"X-API-Key": "not-a-known-key-at-all"})
    assert response.status_code == 401


def test_a_rotated_key_works_beside_the_old_and_a_revoked_one_stops(
    gw: TestClient, keys_file: Path
) -> None:
    keys = [{"id": "a-1", "sha256": key_hash(KEY_A)}, {"id": "a-2", "sha256": key_hash(KEY_A2)}]
    touch(keys_file, keys_yaml(keys=keys))
    for key in (KEY_A, KEY_A2):
        response = gw.post("/api/eks-create-job", json=job("team-a"), headers={"X-API-Key": key})
        assert response.status_code == 202
    in_flight = gw.post("/api/eks-create-job", json=job("team-a"), headers=A).json()["request_id"]
    touch(keys_file, keys_yaml(keys=keys[1:]))
    assert gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code == 401
    assert gw.get(f"/api/tasks/{in_flight}", headers=A).status_code == 401
    rotated = {"X-API-Key": KEY_A2}
    assert gw.post("/api/eks-create-job", json=job("team-a"), headers=rotated).status_code == 202
    # What the revoked key submitted stays the tenant's: queued, readable with its new key.
    assert gw.get(f"/api/tasks/{in_flight}", headers=rotated).json()["state"] == "queued"


def test_a_bad_reload_keeps_the_last_good_file_and_logs_why(
    gw: TestClient, keys_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="worker.keysfile"):
        touch(keys_file, "tenants: [not, a, mapping")
        assert gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code == 202
    assert "Keys file not reloaded, keeping the last good one" in caplog.text
    assert "not valid YAML" in caplog.text


# --- scope -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "allowed"),
    [
        ("team-a", True),
        ("team-a-x", True),
        ("team-a-", False),  # not a valid name anyway: refused as invalid, not enqueued
        ("team-ab", False),
        ("team-b", False),
        ("xteam-a", False),
    ],
)
def test_namespaces_are_exact_names_or_prefixes(
    gw: TestClient, redis: fakeredis.FakeRedis, namespace: str, allowed: bool
) -> None:
    response = gw.post("/api/eks-create-job", json=job(namespace), headers=A)
    if allowed:
        assert response.status_code == 202
        return
    assert response.status_code in (403, 422)
    if response.status_code == 403:
        assert "scope.namespaces: team-a, team-a-*" in response.json()["detail"]
        assert response.json()["error"]["code"] == "OutOfScope"
    assert not redis.keys("eksops:request:*")


def test_an_operation_out_of_scope_is_403_naming_the_scope(
    gw: TestClient, redis: fakeredis.FakeRedis
) -> None:
    response = gw.delete(
        "/api/eks-delete-namespace", params={"namespace_name": "team-a"}, headers=A
    )
    assert response.status_code == 403
    assert response.json()["detail"].startswith(
        "Operation delete_namespace is outside this tenant's scope (scope.operations:"
    )
    assert not redis.keys("eksops:request:*")


def test_a_cluster_out_of_scope_is_403(gw: TestClient) -> None:
    body = {**job("team-a"), "cluster": {"name": "prod-eu", "region": "eu-west-1"}}
    response = gw.post("/api/eks-create-job", json=body, headers=A)
    assert response.status_code == 403
    assert "scope.clusters: default" in response.json()["detail"]


def test_a_job_status_read_out_of_scope_is_refused_before_any_read(gw: TestClient) -> None:
    response = gw.get(
        "/api/eks-get-job-status", params={"job_name": "j", "namespace": "team-b"}, headers=A
    )
    assert response.status_code == 403


# --- isolation -------------------------------------------------------------------


def test_another_tenants_request_reads_as_never_submitted(gw: TestClient) -> None:
    rid = gw.post("/api/eks-create-job", json=job("team-a"), headers=A).json()["request_id"]
    theirs = gw.get(f"/api/tasks/{rid}", headers=B)
    missing = gw.get(f"/api/tasks/{(other := new_id())}", headers=B)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"].replace(other, rid)
    cancel = gw.delete(f"/api/tasks/{rid}", headers=B)
    cancel_missing = gw.delete(f"/api/tasks/{other}", headers=B)
    assert cancel.status_code == cancel_missing.status_code == 404
    assert cancel.json()["detail"] == cancel_missing.json()["detail"].replace(other, rid)
    assert gw.get(f"/api/tasks/{rid}", headers=A).json()["state"] == "queued"


def test_a_request_id_of_another_tenant_is_taken_and_nothing_of_it_is_said(
    keys_file: Path, tenants_app: Callable[..., TestClient]
) -> None:
    shared = json.loads(keys_yaml())
    shared["tenants"]["team-b"]["scope"]["namespaces"].append("team-a")
    keys_file.write_text(json.dumps(shared))
    rid = new_id()
    read = {"job_name": "j", "namespace": "team-a"}
    with tenants_app() as gw:
        mine = gw.get("/api/eks-get-job-status", params=read, headers={**A, "X-Request-ID": rid})
        again = gw.get("/api/eks-get-job-status", params=read, headers={**A, "X-Request-ID": rid})
        # The same operation and arguments: for its own tenant a duplicate, for another
        # a taken ID, whose operation and owner it does not learn.
        theirs = gw.get("/api/eks-get-job-status", params=read, headers={**B, "X-Request-ID": rid})
        other = gw.post(
            "/api/eks-create-job", json=job("team-b"), headers={**B, "X-Request-ID": rid}
        )
        bulk = gw.post(
            "/api/eks-create-jobs", json={"jobs": [{**job("team-b"), "request_id": rid}]}, headers=B
        )
    assert (mine.status_code, again.status_code) == (202, 202)
    assert again.json()["request_id"] == rid
    taken = f"Request ID {rid} is already in use; use a new request ID"
    for refused in (theirs, other):
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == taken
        assert "get_job_status" not in refused.text
        assert "team-a" not in refused.text
    assert bulk.json()["items"][0]["error"] == taken


def test_another_tenants_batch_reads_as_never_submitted(gw: TestClient) -> None:
    bid = gw.post("/api/eks-create-jobs", json={"jobs": [job("team-a")]}, headers=A).json()[
        "batch_id"
    ]
    assert gw.get(f"/api/batches/{bid}", headers=A).json()["tenant"] == "team-a"
    other = new_id()
    for call in (
        lambda b: gw.get(f"/api/batches/{b}", headers=B),
        lambda b: gw.delete(f"/api/batches/{b}", headers=B),
        lambda b: gw.post(f"/api/batches/{b}/retry-failed", headers=B),
    ):
        theirs, missing = call(bid), call(other)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["detail"] == missing.json()["detail"].replace(other, bid)


def test_a_batch_id_of_another_tenant_cannot_be_extended(gw: TestClient) -> None:
    bid = new_id()
    body = {"jobs": [job("team-a")], "batch_id": bid}
    assert gw.post("/api/eks-create-jobs", json=body, headers=A).status_code == 202
    body_b = {"jobs": [job("team-b")], "batch_id": bid}
    assert gw.post("/api/eks-create-jobs", json=body_b, headers=B).status_code == 409


def test_event_streams_of_another_tenant_are_404_and_all_events_need_a_filter(
    gw: TestClient,
) -> None:
    rid = gw.post("/api/eks-create-job", json=job("team-a"), headers=A).json()["request_id"]
    response = gw.get("/api/events", params={"request_id": rid}, headers=B)
    assert response.status_code == 404
    assert response.json()["detail"].startswith(f"Request {rid} not found")
    everything = gw.get("/api/events", headers=B)
    assert everything.status_code == 403
    assert "scope: events" in everything.json()["detail"]


# --- labels and policy -----------------------------------------------------------


def test_jobs_carry_the_tenant_label_whatever_the_caller_set(
    gw: TestClient, redis: fakeredis.FakeRedis
) -> None:
    body = job("team-a")
    body["job_manifest"]["metadata"] = {"labels": {TENANT_LABEL: "team-b"}}
    rid = gw.post("/api/eks-create-job", json=body, headers=A).json()["request_id"]
    messages = [json.loads(m) for m in redis.lrange("eksops", 0, -1) if rid.encode() in m]
    assert len(messages) == 1
    _, kwargs, _ = json.loads(base64.b64decode(messages[0]["body"]))
    manifest = kwargs["job_manifest"]
    assert manifest["metadata"]["labels"][TENANT_LABEL] == "team-a"
    assert manifest["spec"]["template"]["metadata"]["labels"][TENANT_LABEL] == "team-a"


def test_the_policy_refuses_a_privileged_job_naming_the_field(
    tenants_app: Callable[..., TestClient], keys_file: Path, redis: fakeredis.FakeRedis
) -> None:
    keys_file.write_text(keys_yaml(policy={"pod_security": "baseline"}))
    body = job("team-a")
    body["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "privileged": True
    }
    with tenants_app() as gw:
        response = gw.post("/api/eks-create-job", json=body, headers=A)
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "spec.template.spec.containers[0].securityContext.privileged: must not be true "
            "(Pod Security baseline)"
        )
        assert response.json()["error"]["code"] == "PolicyViolation"
        bulk = gw.post("/api/eks-create-jobs", json={"jobs": [body, job("team-a")]}, headers=A)
        assert bulk.status_code == 202
        items = bulk.json()["items"]
        assert "securityContext.privileged" in items[0]["error"]
        assert items[1]["error"] is None
    assert len(redis.keys("eksops:request:*")) == 1


def test_bulk_items_out_of_scope_are_reported_each(gw: TestClient) -> None:
    jobs = [job("team-a"), job("team-b"), job("team-a-2")]
    answer = gw.post("/api/eks-create-jobs", json={"jobs": jobs}, headers=A).json()
    assert answer["accepted"] == 2
    assert answer["items"][1]["error"].startswith("Namespace team-b is outside")


# --- quotas ----------------------------------------------------------------------


def test_the_submission_rate_is_429_with_retry_after_then_recovers(
    tenants_app: Callable[..., TestClient], keys_file: Path
) -> None:
    keys_file.write_text(keys_yaml(quotas={"submissions_per_second": 2, "burst": 2}))
    with tenants_app() as gw:
        codes = [
            gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        refused = gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
        assert refused.headers["Retry-After"] == "1"
        assert "quotas.submissions_per_second" in refused.json()["detail"]
        # team-b is not slowed by team-a's bucket.
        assert gw.post("/api/eks-create-job", json=job("team-b"), headers=B).status_code == 202
        time.sleep(0.6)
        assert gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code == 202


def test_requests_in_flight_are_capped_until_one_ends(
    tenants_app: Callable[..., TestClient],
    keys_file: Path,
    worker: Worker,
    redis: fakeredis.FakeRedis,
) -> None:
    keys_file.write_text(keys_yaml(quotas={"in_flight": 2}))
    with tenants_app() as gw:
        rids = [
            gw.post("/api/eks-create-job", json=job("team-a"), headers=A).json()["request_id"]
            for _ in range(2)
        ]
        refused = gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
        assert refused.status_code == 429
        assert "quotas.in_flight" in refused.json()["detail"]
        assert refused.headers["Retry-After"] == "1"
        # The same request again (idempotent) takes no new place.
        again = gw.post(
            "/api/eks-create-job", json=job("team-a"), headers={**A, "X-Request-ID": rids[0]}
        )
        assert again.status_code == 202
        worker.succeed(rids[0], JOB_CREATED)
        assert gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code == 202
        assert redis.zcard(open_key("team-a")) == 2


def test_a_bulk_submission_over_the_size_quota_is_429(
    tenants_app: Callable[..., TestClient], keys_file: Path, redis: fakeredis.FakeRedis
) -> None:
    keys_file.write_text(keys_yaml(quotas={"max_bulk_items": 2}))
    with tenants_app() as gw:
        body = {"jobs": [job("team-a")] * 3}
        response = gw.post("/api/eks-create-jobs", json=body, headers=A)
    assert response.status_code == 429
    assert "quotas.max_bulk_items" in response.json()["detail"]
    assert not redis.keys("eksops:request:*")


# --- audit -----------------------------------------------------------------------


def test_every_call_is_audited_and_no_key_is_in_any_log(
    gw: TestClient, audit: Callable[[], list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        ok = gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
        gw.post("/api/eks-create-job", json=job("team-b"), headers=A)
        gw.post("/api/eks-create-job", json=job("team-a"), headers={"X-API-Key": "wrong" * 5})
        gw.get(f"/api/tasks/{ok.json()['request_id']}", headers=B)
    lines = audit()
    assert [(x["tenant"], x["operation"], x["outcome"], x["status"]) for x in lines] == [
        ("team-a", "create_job", "accepted", 202),
        ("team-a", "create_job", "refused", 403),
        (None, "create_job", "refused", 401),
        ("team-b", "get_task", "refused", 404),
    ]
    assert lines[0]["key_id"] == "a-1"
    assert lines[0]["target"] == "default/team-a"
    assert lines[0]["request_id"] == ok.json()["request_id"]
    assert lines[1]["reason"] == "OutOfScope"
    assert lines[2]["reason"] == "unauthenticated"
    assert lines[0]["source"]
    for secret in (KEY_A, KEY_B, LEGACY, "wrong" * 5):
        assert secret not in caplog.text


def test_calls_refused_before_any_route_are_audited_under_the_key_they_present(
    tenants_app: Callable[..., TestClient], audit: Callable[[], list[dict[str, Any]]]
) -> None:
    with tenants_app(gateway_max_body_bytes=2048) as gw:
        big = gw.post("/api/eks-create-job", content=b"x" * 4096, headers=A)
        bad = gw.get("/api/tasks/x", headers={**B, "X-Request-ID": "not a uuid"})
        anonymous = gw.post("/api/eks-create-job", content=b"x" * 4096)
    assert (big.status_code, bad.status_code, anonymous.status_code) == (413, 422, 413)
    lines = audit()
    assert [(x["tenant"], x["key_id"], x["status"], x["reason"]) for x in lines] == [
        ("team-a", "a-1", 413, "RequestTooLarge"),
        ("team-b", "b-1", 422, "InvalidRequestId"),
        (None, None, 413, "RequestTooLarge"),
    ]
    assert lines[0]["operation"] == "POST /api/eks-create-job"
    assert lines[1]["request_id"] == bad.headers["X-Request-ID"]
    assert all(x["outcome"] == "refused" and x["source"] for x in lines)


def test_calls_per_tenant_are_counted_by_outcome_and_reason(gw: TestClient) -> None:
    def counts() -> dict[tuple[str, str, str], float]:
        text = gw.get("/metrics").text
        return {
            (s.labels["tenant"], s.labels["outcome"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "eksops_tenant_calls_total"
        }

    before = counts()
    gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
    gw.post("/api/eks-create-job", json=job("team-a"), headers=A)
    gw.post("/api/eks-create-job", json=job("team-b"), headers=A)
    gw.post("/api/eks-create-job", json=job("team-a"), headers={"X-API-Key": "wrong" * 5})
    after = counts()
    grown = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert grown == {
        ("team-a", "accepted", "none"): 2,
        ("team-a", "refused", "OutOfScope"): 1,
        ("none", "refused", "unauthenticated"): 1,
    }


def test_bulk_items_beyond_the_in_flight_quota_are_refused_each(
    tenants_app: Callable[..., TestClient], keys_file: Path, redis: fakeredis.FakeRedis
) -> None:
    keys_file.write_text(keys_yaml(quotas={"in_flight": 3}))
    with tenants_app() as gw:
        assert gw.post("/api/eks-create-job", json=job("team-a"), headers=A).status_code == 202
        answer = gw.post("/api/eks-create-jobs", json={"jobs": [job("team-a")] * 4}, headers=A)
    assert answer.status_code == 422  # nothing of the batch fit
    items = answer.json()["items"]
    assert all("quotas.in_flight" in (item["error"] or "") for item in items)
    assert redis.zcard(open_key("team-a")) == 1
    assert len(redis.keys("eksops:request:*")) == 1


def test_a_library_caller_naming_a_tenant_is_checked_and_audited(
    redis: fakeredis.FakeRedis,
    celery_app: Any,
    audit: Callable[[], list[dict[str, Any]]],
) -> None:
    tenant = Tenant(name="team-a", scope=Scope(namespaces=("team-a",)))
    eksops = EksOps(
        settings=ProducerSettings(),
        queue=QueueSettings(redis_url="redis://unused:6379/0"),
        app=celery_app,
        redis=redis,
        tenant=tenant,
    )
    sub = eksops.create_namespace("team-a")
    assert eksops.status(sub.request_id).tenant == "team-a"
    with pytest.raises(OutOfScope):
        eksops.create_namespace("team-b")
    lines = audit()
    assert [(x["tenant"], x["source"], x["outcome"], x["reason"]) for x in lines] == [
        ("team-a", "library", "accepted", None),
        ("team-a", "library", "refused", "OutOfScope"),
    ]
    assert lines[1]["target"] == "default/team-b"
