"""Two tenants share one stack: uvicorn gateway, real Redis, a real worker, the cluster.

The gateway reads a ``GATEWAY_KEYS_FILE`` of two tenants. Each creates Jobs in its own
namespaces; the Jobs and the namespaces made for them carry ``eksops.io/tenant``; the
other tenant's request IDs, batches and Jobs read as not found; policy and quotas
refuse before anything is enqueued; every call is an audit line without key material.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producer.gateway.keyring import key_hash
from tests.integration.conftest import Target, job_manifest
from tests.integration.test_gateway import GatewayProcess, poll
from tests.support.processes import WorkerProcess, run_cli
from worker.contracts import TENANT_LABEL
from worker.operations import ClusterClient
from worker.records import record_key

pytestmark = pytest.mark.integration

KEY_A = "it-team-a-key-0123456789abcdef"
KEY_B = "it-team-b-key-0123456789abcdef"
A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def tenant_gateway(
    redis_url: str,
    target: Target,
    worker: WorkerProcess,
    prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("tenants")
    keys = {
        "tenants": {
            "team-a": {
                "keys": [{"id": "a-1", "sha256": key_hash(KEY_A)}],
                "scope": {"namespaces": [f"{prefix}-a", f"{prefix}-a-*", f"{prefix}-shared"]},
                "quotas": {"in_flight": 50, "max_bulk_items": 5},
                "policy": {"pod_security": "baseline", "default_ttl_seconds_after_finished": 600},
            },
            "team-b": {
                "keys": [{"id": "b-1", "sha256": key_hash(KEY_B)}],
                "scope": {"namespaces": [f"{prefix}-b", f"{prefix}-shared"]},
            },
        }
    }
    (folder / "keys.yaml").write_text(json.dumps(keys))
    env = {
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "DEBUG",
        "GATEWAY_KEYS_FILE": str(folder / "keys.yaml"),
        "AUDIT_SINK": f"file:{folder / 'audit.jsonl'}",
    }
    for name in ("EKS_CLUSTER_NAME", "EKS_REGION"):
        if name in target.env:
            env[name] = target.env[name]
    for name in (f"{prefix}-a", f"{prefix}-a-x", f"{prefix}-b", f"{prefix}-shared"):
        target.namespaces.add(name)
    process = GatewayProcess(env, folder / "gateway.log").start()
    yield process
    process.stop()


@pytest.fixture
def http(tenant_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenant_gateway.base_url, timeout=60) as client:
        yield client


def as_tenant(http: httpx.Client, headers: dict[str, str]) -> httpx.Client:
    """A client of the same gateway sending ``headers`` on every call (polls too)."""
    return httpx.Client(base_url=http.base_url, timeout=60, headers=headers)


def body(namespace: str, name: str) -> dict[str, Any]:
    return {"job_manifest": job_manifest(name), "namespace": namespace}


def test_two_tenants_share_the_stack_and_neither_sees_the_other(
    http: httpx.Client, kube: ClusterClient, prefix: str, tenant_gateway: GatewayProcess
) -> None:
    ns_a, ns_b = f"{prefix}-a-x", f"{prefix}-b"
    with as_tenant(http, A) as client_a:
        made = poll(client_a, client_a.post("/api/eks-create-job", json=body(ns_a, "train")))
    assert made["state"] == "succeeded", made
    assert made["tenant"] == "team-a"
    job = kube.call(kube.batch.read_namespaced_job, name="train", namespace=ns_a)
    assert job["metadata"]["labels"][TENANT_LABEL] == "team-a"
    assert job["spec"]["ttlSecondsAfterFinished"] == 600  # the policy's default
    namespace = kube.call(kube.core.read_namespace, name=ns_a)
    assert namespace["metadata"]["labels"][TENANT_LABEL] == "team-a"

    # team-b: the request reads as never submitted, the namespace is out of its scope.
    rid = made["request_id"]
    assert http.get(f"/api/tasks/{rid}", headers=B).status_code == 404
    refused = http.delete(
        "/api/eks-delete-job", params={"job_name": "train", "namespace": ns_a}, headers=B
    )
    assert refused.status_code == 403
    assert kube.call(kube.batch.read_namespaced_job, name="train", namespace=ns_a)

    with as_tenant(http, B) as client_b:
        b = poll(client_b, client_b.post("/api/eks-create-job", json=body(ns_b, "etl")))
    assert b["state"] == "succeeded", b

    # A privileged Job is refused before enqueue, naming the field; single and bulk.
    evil = body(ns_a, "evil")
    evil["job_manifest"]["spec"]["template"]["spec"]["hostPID"] = True
    single = http.post("/api/eks-create-job", json=evil, headers=A)
    assert single.status_code == 403
    assert single.json()["detail"].startswith("spec.template.spec.hostPID: must not be true")
    bulk = http.post(
        "/api/eks-create-jobs", json={"jobs": [evil, body(ns_a, "ok-1")]}, headers=A
    ).json()
    assert bulk["accepted"] == 1
    assert "hostPID" in bulk["items"][0]["error"]
    assert http.get(f"/api/batches/{bulk['batch_id']}", headers=B).status_code == 404
    assert http.get(f"/api/batches/{bulk['batch_id']}", headers=A).json()["tenant"] == "team-a"
    too_many = http.post("/api/eks-create-jobs", json={"jobs": [body(ns_a, "x")] * 6}, headers=A)
    assert too_many.status_code == 429
    assert too_many.headers["Retry-After"]

    audit_path = Path(tenant_gateway.env["AUDIT_SINK"].removeprefix("file:"))
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    outcomes = {(x["tenant"], x["operation"], x["status"]) for x in lines}
    assert ("team-a", "create_job", 202) in outcomes
    assert ("team-b", "get_task", 404) in outcomes
    assert ("team-b", "delete_job", 403) in outcomes
    assert ("team-a", "create_jobs", 429) in outcomes
    everything = audit_path.read_text() + tenant_gateway.log()
    assert KEY_A not in everything
    assert KEY_B not in everything


def test_in_a_namespace_both_scopes_share_a_tenants_job_is_not_found_by_the_other(
    http: httpx.Client, kube: ClusterClient, prefix: str
) -> None:
    shared = f"{prefix}-shared"
    with as_tenant(http, A) as client_a:
        made = poll(client_a, client_a.post("/api/eks-create-job", json=body(shared, "mine")))
    assert made["state"] == "succeeded", made
    seed_404 = {"detail": f"Job mine not found in namespace {shared}"}
    with as_tenant(http, B) as client_b:
        read = client_b.get(
            "/api/eks-get-job-status", params={"job_name": "mine", "namespace": shared}
        )
        assert read.status_code == 404, read.text
        assert read.json()["detail"] == seed_404["detail"]
        deleted = client_b.delete(
            "/api/eks-delete-job", params={"job_name": "mine", "namespace": shared, "wait": 30}
        )
        assert deleted.status_code == 404, deleted.text
        assert deleted.json()["detail"] == seed_404["detail"]
        logs = client_b.get(
            "/api/eks-get-job-logs", params={"job_name": "mine", "namespace": shared, "wait": 30}
        )
        assert logs.status_code == 404, logs.text
    assert kube.call(kube.batch.read_namespaced_job, name="mine", namespace=shared)
    with as_tenant(http, A) as client_a:
        mine = client_a.get(
            "/api/eks-get-job-status", params={"job_name": "mine", "namespace": shared}
        )
        assert mine.status_code == 200, mine.text


def test_a_tenants_job_stays_hidden_from_the_other_once_its_request_has_expired(
    http: httpx.Client, redis_url: str, prefix: str
) -> None:
    shared = f"{prefix}-shared"
    params = {"job_name": "kept", "namespace": shared}
    with as_tenant(http, A) as client_a:
        made = poll(client_a, client_a.post("/api/eks-create-job", json=body(shared, "kept")))
        assert made["state"] == "succeeded", made
        for _ in range(100):  # until the tracker has recorded it, with its tenant label
            mine = client_a.get("/api/eks-get-job-status", params=params).json()
            if mine.get("source") == "tracker":
                break
            time.sleep(0.1)
    assert (mine["source"], mine["tenant"]) == ("tracker", "team-a"), mine
    redis.Redis.from_url(redis_url).delete(record_key(made["request_id"]))
    with as_tenant(http, B) as client_b:
        read = client_b.get("/api/eks-get-job-status", params=params)
    assert read.status_code == 404, read.text
    assert read.json()["detail"] == f"Job kept not found in namespace {shared}"


def test_the_cli_submits_for_a_tenant_with_its_scope_and_shows_it(
    tenant_gateway: GatewayProcess, cli_env: dict[str, str], prefix: str
) -> None:
    env = {**cli_env, "GATEWAY_KEYS_FILE": tenant_gateway.env["GATEWAY_KEYS_FILE"]}
    refused = run_cli(["--tenant", "team-a", "create-namespace", f"{prefix}-b"], env)
    assert refused.returncode == 2, refused.stderr
    assert f"Namespace {prefix}-b is outside this tenant's scope" in refused.stderr
    done = run_cli(
        ["--tenant", "team-a", "create-namespace", f"{prefix}-a", "--wait", "30", "--json"], env
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["tenant"] == "team-a"
    shown = run_cli(["task", answer["request_id"]], env)
    assert "tenant: team-a" in shown.stdout
    unknown = run_cli(["--tenant", "nobody", "create-namespace", f"{prefix}-a"], env)
    assert unknown.returncode == 2
    assert "tenant 'nobody' is not in GATEWAY_KEYS_FILE" in unknown.stderr
