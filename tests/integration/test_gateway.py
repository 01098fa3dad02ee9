"""The HTTP gateway end to end: uvicorn, real Redis, a real worker, the cluster.

The gateway runs as operators run it (``uvicorn producer.gateway:app``, configured by
environment variables only) and is called over HTTP with httpx. Every seed endpoint is
checked both ways, 202 then polling its ``status_url``, and ``?wait``, with the seed's
bodies and error texts.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubesim import Simulator
from tests.integration.conftest import Target, job_manifest
from tests.support.processes import BIN, ROOT, WorkerProcess, base_env, terminate
from tests.support.waiting import wait_until
from worker.contracts import REQUEST_ID_LABEL
from worker.logs import short_id
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration

WAIT = {"wait": 30}


class GatewayProcess:
    """``uvicorn producer.gateway:app`` on a free local port, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = base_env(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "uvicorn"),
                    "producer.gateway:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"gateway not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process)


@pytest.fixture(scope="module")
def gateway(
    redis_url: str,
    target: Target,
    worker: WorkerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    env = {"REDIS_URL": redis_url, "LOG_LEVEL": "DEBUG", "GATEWAY_WAIT_MAX_SECONDS": "60"}
    for name in ("EKS_CLUSTER_NAME", "EKS_REGION"):
        if name in target.env:
            env[name] = target.env[name]
    process = GatewayProcess(env, tmp_path_factory.mktemp("gateway") / "gateway.log").start()
    yield process
    process.stop()


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=60) as client:
        yield client


def poll(http: httpx.Client, accepted: httpx.Response, timeout: float = 30) -> dict[str, Any]:
    """Follow a 202's status_url until the request is final; return the last status."""
    assert accepted.status_code == 202, accepted.text
    url = accepted.json()["status_url"]
    assert accepted.headers["Location"] == url

    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = http.get(url).json()
        return status if status["state"] in {"succeeded", "failed"} else None

    return wait_until(ended, timeout=timeout, describe=lambda: http.get(url).json())


def test_the_five_seed_endpoints_answer_202_and_their_status_urls_give_the_seed_bodies(
    http: httpx.Client, namespace: str
) -> None:
    created_ns = poll(
        http, http.post("/api/eks-create-namespace", json={"namespace_name": namespace})
    )
    assert created_ns["state"] == "succeeded"
    assert set(created_ns["result"]) == {"namespace_name", "creation_timestamp", "status"}
    assert (created_ns["result"]["namespace_name"], created_ns["result"]["status"]) == (
        namespace,
        "created",
    )

    created = poll(
        http,
        http.post(
            "/api/eks-create-job",
            json={"job_manifest": job_manifest("nightly"), "namespace": namespace},
        ),
    )
    assert created["result"]["job_name"] == "nightly"
    assert created["result"]["namespace"] == namespace
    assert created["result"]["status"] == "created"
    assert created["result"]["creation_timestamp"].endswith("+00:00")
    assert created["submitted_at"] <= created["started_at"] <= created["finished_at"]

    # As the synchronous API did: 200 with the status at once (no 202 to poll).
    answer = http.get(
        "/api/eks-get-job-status", params={"job_name": "nightly", "namespace": namespace}
    )
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) >= {
        "job_name",
        "namespace",
        "state",
        "active",
        "succeeded",
        "failed",
        "start_time",
        "completion_time",
    }

    deleted = poll(
        http,
        http.delete("/api/eks-delete-job", params={"job_name": "nightly", "namespace": namespace}),
    )
    assert deleted["result"] == {"message": "Job nightly deleted successfully", "status": "success"}

    gone = poll(
        http, http.delete("/api/eks-delete-namespace", params={"namespace_name": namespace})
    )
    assert gone["result"] == {
        "message": f"Namespace {namespace} deleted successfully",
        "status": "success",
    }


def test_the_five_seed_endpoints_with_wait_answer_200_with_the_seed_bodies(
    http: httpx.Client, kube: ClusterClient, namespace: str
) -> None:
    response = http.post(
        "/api/eks-create-namespace", params=WAIT, json={"namespace_name": namespace}
    )
    assert response.status_code == 200, response.text
    assert response.json()["namespace_name"] == namespace

    response = http.post(
        "/api/eks-create-job",
        params=WAIT,
        json={"job_manifest": job_manifest("waited"), "namespace": namespace},
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"job_name", "namespace", "creation_timestamp", "status"}
    rid = response.headers["X-Request-ID"]
    job = kube.call(kube.batch.read_namespaced_job, name="waited", namespace=namespace)
    assert job["metadata"]["labels"][REQUEST_ID_LABEL] == rid

    response = http.get(
        "/api/eks-get-job-status", params={"job_name": "waited", "namespace": namespace, **WAIT}
    )
    assert response.status_code == 200, response.text
    assert response.json()["job_name"] == "waited"
    assert response.json()["state"] in {"pending", "running", "completed"}

    response = http.delete(
        "/api/eks-delete-job", params={"job_name": "waited", "namespace": namespace, **WAIT}
    )
    assert (response.status_code, response.json()) == (
        200,
        {"message": "Job waited deleted successfully", "status": "success"},
    )

    response = http.delete(
        "/api/eks-delete-namespace", params={"namespace_name": namespace, **WAIT}
    )
    assert (response.status_code, response.json()) == (
        200,
        {"message": f"Namespace {namespace} deleted successfully", "status": "success"},
    )


def test_a_missing_job_is_the_seed_404_text_and_a_structured_error_when_polled(
    http: httpx.Client, namespace: str
) -> None:
    http.post("/api/eks-create-namespace", params=WAIT, json={"namespace_name": namespace})
    query = {"job_name": "nonexistent-job", "namespace": namespace}

    for params in (query, {**query, **WAIT}):  # answered at once, with or without ?wait
        response = http.get("/api/eks-get-job-status", params=params)
        assert response.status_code == 404
        assert (
            response.json()["detail"] == f"Job nonexistent-job not found in namespace {namespace}"
        )

    polled = http.get(f"/api/tasks/{response.json()['request_id']}").json()
    assert polled["state"] == "failed"
    assert (polled["error"]["code"], polled["error"]["http_status"]) == ("NotFound", 404)
    assert polled["error"]["message"] == 'jobs.batch "nonexistent-job" not found'

    response = http.delete("/api/eks-delete-job", params={**query, **WAIT})
    assert response.status_code == 404
    assert response.json()["detail"] == f"Job nonexistent-job not found in namespace {namespace}"


def test_the_seed_404_text_in_the_default_namespace(http: httpx.Client) -> None:
    response = http.get(
        "/api/eks-get-job-status",
        params={"job_name": "nonexistent-job", "namespace": "default", **WAIT},
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "Job nonexistent-job not found in namespace default"


def test_deleting_a_missing_namespace_is_404(http: httpx.Client, namespace: str) -> None:
    response = http.delete(
        "/api/eks-delete-namespace", params={"namespace_name": namespace, **WAIT}
    )
    assert response.status_code == 404
    assert response.json()["detail"] == f"Namespace {namespace} not found"


def test_an_rbac_denial_is_the_seed_500_kubernetes_api_error_forbidden(
    http: httpx.Client, sim: Simulator, namespace: str
) -> None:
    sim.admin.deny(verb="create", resource="namespaces")
    response = http.post(
        "/api/eks-create-namespace", params=WAIT, json={"namespace_name": namespace}
    )
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "Kubernetes API error: Forbidden"
    assert body["error"]["code"] == "Forbidden"
    assert 'cannot create resource "namespaces"' in body["error"]["message"]


def test_a_namespace_created_twice_is_a_409_with_the_kubernetes_message(
    http: httpx.Client, namespace: str
) -> None:
    body = {"namespace_name": namespace}
    assert http.post("/api/eks-create-namespace", params=WAIT, json=body).status_code == 200
    again = http.post("/api/eks-create-namespace", params=WAIT, json=body)
    assert again.status_code == 409
    assert again.json()["detail"] == f'namespaces "{namespace}" already exists'


def test_a_namespace_eksops_did_not_create_is_refused_unless_allowed(
    http: httpx.Client, kube: ClusterClient, namespace: str
) -> None:
    kube.call(kube.core.create_namespace, body={"metadata": {"name": namespace}})
    refused = http.delete("/api/eks-delete-namespace", params={"namespace_name": namespace, **WAIT})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(f"Namespace {namespace} was not created by eksops")
    allowed = http.delete(
        "/api/eks-delete-namespace",
        params={"namespace_name": namespace, "allow_unmanaged": "true", **WAIT},
    )
    assert allowed.status_code == 200


def test_the_same_x_request_id_twice_runs_one_task_with_one_result(
    http: httpx.Client, kube: ClusterClient, worker: WorkerProcess, namespace: str
) -> None:
    rid = str(uuid.uuid4())
    body = {"job_manifest": job_manifest(), "namespace": namespace}
    headers = {"X-Request-ID": rid}
    first = http.post("/api/eks-create-job", json=body, headers=headers)
    second = http.post("/api/eks-create-job", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"request_id": rid, "status_url": f"/api/tasks/{rid}"}

    waited = http.post("/api/eks-create-job", params=WAIT, json=body, headers=headers)
    assert waited.status_code == 200
    assert waited.json() == poll(http, first)["result"]
    jobs = kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]
    assert [job["metadata"]["labels"][REQUEST_ID_LABEL] for job in jobs] == [rid]
    assert worker.log().count(f"[{rid}] received") == 1


def test_bad_input_is_refused_before_the_queue(http: httpx.Client, namespace: str) -> None:
    response = http.post(
        "/api/eks-create-job", json={"job_manifest": {"spec": {}}, "namespace": namespace}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid create_job request: job_manifest.spec")


def test_an_unknown_request_id_is_404(http: httpx.Client) -> None:
    rid = str(uuid.uuid4())
    response = http.get(f"/api/tasks/{rid}")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"Request {rid} not found: never submitted, or its result expired"
    )


def test_health_sees_redis_and_the_live_worker(http: httpx.Client, target: Target) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["broker"] == "reachable"
    assert body["workers"] >= 1
    assert body["cluster"] == target.env.get("EKS_CLUSTER_NAME")
    (tracker,) = body["trackers"]  # the session's one cluster, tracked by its one worker
    assert (tracker["current"], tracker["state"]) == (True, "watching")
    assert tracker["heartbeat_age_seconds"] < 10
    assert tracker["holder"]


def test_one_request_is_followed_by_its_tag_through_gateway_and_worker(
    http: httpx.Client, gateway: GatewayProcess, worker: WorkerProcess, namespace: str
) -> None:
    response = http.post(
        "/api/eks-create-job",
        params=WAIT,
        json={"job_manifest": job_manifest("traced"), "namespace": namespace},
    )
    assert response.status_code == 200
    tag = f"[{short_id(response.headers['X-Request-ID'])}]"
    gateway_lines = [line for line in gateway.log().splitlines() if line.endswith(tag)]
    assert any(
        f"| routes               | API request: create_job namespace={namespace}" in line
        for line in gateway_lines
    )
    assert any(
        f"| routes               | Successfully created job traced in namespace {namespace}" in line
        for line in gateway_lines
    )
    worker_lines = [line for line in worker.log().splitlines() if line.endswith(tag)]
    assert any(
        f"START create_job job=traced namespace={namespace}" in line for line in worker_lines
    )


def test_a_bulk_submission_runs_every_item_and_the_batch_reports_it(
    http: httpx.Client, namespace: str, kube: ClusterClient
) -> None:
    jobs = [{"job_manifest": job_manifest(), "namespace": namespace} for _ in range(25)]
    accepted = http.post("/api/eks-create-jobs", json={"jobs": jobs})
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert batch["accepted"] == 25
    status = wait_until(
        lambda: (s := http.get(batch["status_url"]).json())["done"] and s, timeout=60
    )
    assert status["counts"]["succeeded"] == 25
    created = kube.call(kube.batch.list_namespaced_job, namespace=namespace)["items"]
    assert len(created) == 25
    one = batch["items"][0]
    assert http.get(one["status_url"]).json()["state"] == "succeeded"


SEED_STATUS_FIELDS = {
    "job_name",
    "namespace",
    "state",
    "active",
    "succeeded",
    "failed",
    "start_time",
    "completion_time",
}


def test_job_status_answers_200_at_once_from_the_record_as_the_seed_did(
    http: httpx.Client, namespace: str, sim: Simulator
) -> None:
    created = http.post(
        "/api/eks-create-job",
        params={"wait": 30, "wait_for": "complete"},
        json={"job_manifest": job_manifest("tracked"), "namespace": namespace},
    )
    assert created.status_code == 200, created.text
    assert created.json()["state"] == "completed"  # the Job ended, not just the request
    sim.admin.clear_counters()
    for _ in range(10):
        status = http.get(
            "/api/eks-get-job-status", params={"job_name": "tracked", "namespace": namespace}
        )
        assert status.status_code == 200, status.text
        assert set(status.json()) >= SEED_STATUS_FIELDS
        assert (status.json()["state"], status.json()["source"]) == ("completed", "tracker")
    assert sim.admin.count("get", "jobs") == 0  # no queue, no API call

    missing = http.get(
        "/api/eks-get-job-status", params={"job_name": "nonexistent-job", "namespace": namespace}
    )
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"Job nonexistent-job not found in namespace {namespace}"


def test_wait_for_complete_answers_with_the_failed_jobs_reason(
    http: httpx.Client, namespace: str
) -> None:
    manifest = job_manifest("broken", **{"kubesim.eksops.io/outcome": "fail"})
    http.post(
        "/api/eks-create-job",
        params={"wait": 30},
        json={"job_manifest": manifest, "namespace": namespace},
    )
    status = http.get(
        "/api/eks-get-job-status",
        params={"job_name": "broken", "namespace": namespace, "wait_for": "complete", "wait": 30},
    )
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["state"], body["reason"]) == ("failed", "BackoffLimitExceeded")
    assert body["failed_pods"][0]["exit_code"] == 1


def test_job_logs_come_from_the_pods_and_from_the_captured_tail_once_they_are_gone(
    http: httpx.Client, namespace: str
) -> None:
    manifest = job_manifest("chatty", **{"kubesim.eksops.io/outcome": "fail"})
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["echo", "hello"]  # type: ignore[index]
    http.post(
        "/api/eks-create-job",
        params={"wait": 30, "wait_for": "complete"},
        json={"job_manifest": manifest, "namespace": namespace},
    )
    params = {"job_name": "chatty", "namespace": namespace, "tail_lines": 5, "wait": 30}
    logs = http.get("/api/eks-get-job-logs", params=params)
    assert logs.status_code == 200, logs.text
    assert logs.json()["source"] == "cluster"
    assert logs.json()["logs"][0]["lines"][0] == "hello"
    # The tracker captured the failed container's tail; the pods then go with the Job.
    wait_until(lambda: http.get("/api/eks-get-job-status", params=params).json().get("log_tail"))
    http.delete(
        "/api/eks-delete-job", params={"job_name": "chatty", "namespace": namespace, "wait": 30}
    )
    status = http.get("/api/eks-get-job-logs", params=params)
    assert status.status_code == 200, status.text
    assert status.json()["source"] == "tracker"
    assert status.json()["logs"][0]["lines"][0] == "hello"
