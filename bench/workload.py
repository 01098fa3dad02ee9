"""What every phase sends and how it knows the work is done.

One Job manifest (a small batch Job as schedulers submit them) is used by every
phase, each phase in its own namespace, created beforehand so that every task costs
exactly one API call. The worker's own :class:`worker.operations.Clusters` builds the
harness's Kubernetes client: DescribeCluster, verified TLS, presigned IAM token, the
same ``create_namespaced_job`` path as a worker.

A queue is drained when its list and kombu's ``unacked`` hash are both empty (late
acks: a message leaves ``unacked`` only after its result is stored) and every
expected result key exists.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from worker import operations
from worker.delivery import lanes
from worker.manifests import validate_job_manifest
from worker.operations import ClusterClient, Clusters
from worker.settings import WorkerSettings

RESULT_PREFIX = "celery-task-meta-"
UNACKED = "unacked"

MANIFEST: dict[str, Any] = {
    "metadata": {"labels": {"team": "batch", "app": "bench"}},
    "spec": {
        "backoffLimit": 2,
        "ttlSecondsAfterFinished": 600,
        "template": {
            "metadata": {"labels": {"app": "bench"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "public.ecr.aws/docker/library/busybox:1.36",
                        "command": ["sh", "-c", "echo hello from a batch job"],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }
                ],
                "restartPolicy": "Never",
            },
        },
    },
}


def manifest() -> dict[str, Any]:
    """Return a fresh copy of the benchmark's Job manifest."""
    return copy.deepcopy(MANIFEST)


def validated_manifest(namespace: str) -> dict[str, Any]:
    """Return the manifest as a worker receives it (validated, apiVersion/kind set)."""
    return validate_job_manifest(manifest(), namespace=namespace)


def direct_clusters(kubesim_env: dict[str, str], *, pool_size: int) -> Clusters:
    """Return the worker's cluster-client factory, limits off, for the harness itself.

    boto3 reads ``AWS_ENDPOINT_URL_EKS``/``AWS_CA_BUNDLE`` and the credentials from the
    process environment, which the harness has set to kubesim's.
    """
    settings = WorkerSettings(
        _env_file=None,
        eks_cluster_name=kubesim_env["EKS_CLUSTER_NAME"],
        eks_region=kubesim_env["EKS_REGION"],
        k8s_rate_limit_qps=0,
        k8s_max_in_flight=0,
        log_level="WARNING",
    )
    return Clusters(settings, pool_size=pool_size)


def create_namespaces(client: ClusterClient, names: Sequence[str]) -> None:
    """Create the phases' namespaces, so every measured task is one API call."""
    for name in names:
        operations.create_namespace(cluster=client, request_id=str(uuid.uuid4()), name=name)


def list_request_ids(client: ClusterClient, namespace: str) -> list[str]:
    """Return the request-id label of every Job in ``namespace`` (one per Job)."""
    body = client.call(
        client.batch.list_namespaced_job,
        namespace=namespace,
        label_selector="app.kubernetes.io/managed-by=eksops",
        _request_timeout=(5, 300),
    )
    return [
        ((item.get("metadata") or {}).get("labels") or {}).get("eksops.io/request-id", "")
        for item in body.get("items", [])
    ]


def result_key(request_id: str) -> str:
    """Return the Celery result key of a request."""
    return RESULT_PREFIX + request_id


def results_stored(client: redis.Redis, request_ids: Sequence[str]) -> int:
    """Return how many of ``request_ids`` have a stored result."""
    found = 0
    for start in range(0, len(request_ids), 5000):
        keys = [result_key(rid) for rid in request_ids[start : start + 5000]]
        found += int(client.exists(*keys))
    return found


def wait_drained(
    client: redis.Redis,
    request_ids: Sequence[str],
    *,
    timeout: float,
    poll: float = 0.005,
) -> float:
    """Wait until every request has run; return ``time.perf_counter()`` at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lanes.waiting(client).total == 0 and client.hlen(UNACKED) == 0:
            done_at = time.perf_counter()
            if results_stored(client, request_ids) == len(request_ids):
                return done_at
        time.sleep(poll)
    stored = results_stored(client, request_ids)
    raise TimeoutError(f"queue not drained after {timeout:.0f}s ({stored}/{len(request_ids)})")
