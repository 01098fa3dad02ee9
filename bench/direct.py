"""The baseline: the worker's own create-job operation, called directly from N threads.

No queue, no Celery: each thread calls :func:`worker.operations.create_job` (the
function a worker task calls) with the manifest exactly as a worker receives it,
through the worker's :class:`~worker.operations.ClusterClient` (DescribeCluster,
verified TLS, IAM token, ``BatchV1Api.create_namespaced_job``), back to back. This is
what "calling the Kubernetes client directly" reaches against the same kubesim.
"""

from __future__ import annotations

import uuid

from bench.loop import LoopResult, closed_loop
from bench.workload import validated_manifest
from worker import operations
from worker.operations import ClusterClient


def run_direct(
    client: ClusterClient, *, namespace: str, concurrency: int, duration: float, warmup: float
) -> LoopResult:
    """Measure direct create-job calls from ``concurrency`` threads."""
    body = validated_manifest(namespace)

    def request(_index: int) -> None:
        operations.create_job(
            cluster=client, request_id=str(uuid.uuid4()), manifest=body, namespace=namespace
        )

    return closed_loop(request, concurrency=concurrency, duration=duration, warmup=warmup)
