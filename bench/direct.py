"""The baseline: calling the Kubernetes client directly, from N threads.

No queue, no Celery, no eksops code on the call path: each thread calls the
``kubernetes`` package's ``BatchV1Api.create_namespaced_job`` with its defaults (the
response deserialised into a ``V1Job``), as an application using the client would,
back to back. The client is configured the way the worker configures its own
(DescribeCluster, verified TLS, IAM token), and the Job body is the one the worker
would send (name, namespace, eksops labels). This is "what calling the Kubernetes
client directly reaches" against the same kubesim.
"""

from __future__ import annotations

from bench.loop import LoopResult, closed_loop
from bench.workload import validated_manifest
from worker.names import new_request_id
from worker.operations import ClusterClient
from worker.operations.jobs import build_job_body, job_name


def run_direct(
    client: ClusterClient, *, namespace: str, concurrency: int, duration: float, warmup: float
) -> LoopResult:
    """Measure direct create-job calls from ``concurrency`` threads."""
    manifest = validated_manifest(namespace)
    api = client.batch

    def request(_index: int) -> None:
        rid = new_request_id()
        body = build_job_body(
            manifest, name=job_name(manifest, rid), namespace=namespace, request_id=rid
        )
        # The generated client serialises a dict body as is (its annotation says V1Job).
        api.create_namespaced_job(namespace=namespace, body=body)  # type: ignore[arg-type]

    return closed_loop(request, concurrency=concurrency, duration=duration, warmup=warmup)
