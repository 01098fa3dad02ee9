"""Reading a Job's logs: the last lines of every container of its newest pods.

Bounded on every side, whatever the Job: at most :data:`MAX_PODS` pods (the newest
first), ``tail_lines`` lines and :data:`MAX_BYTES_PER_CONTAINER` bytes per container,
so one request can never pull a whole log through the queue. A container that
restarted (``OnFailure``) also gives the log of the run that failed. A Job with no
pods left (removed after it ended, or none started yet) is ``NoPods``: callers then
show the tail the job tracker captured when the pod failed.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from worker.contracts import ContainerLog, JobLogs
from worker.errors import EksOpsError, NotFound
from worker.logs import log_operation
from worker.operations.clients import ClusterClient
from worker.operations.jobs import jobs_path
from worker.operations.ownership import refuse_foreign

logger = logging.getLogger(__name__)

MAX_PODS = 10
MAX_BYTES_PER_CONTAINER = 256 * 1024


def _log(
    cluster: ClusterClient, namespace: str, pod: str, *, container: str, tail: int, previous: bool
) -> ContainerLog:
    query = {
        "container": container,
        "tailLines": str(tail),
        "limitBytes": str(MAX_BYTES_PER_CONTAINER),
    }
    if previous:
        query["previous"] = "true"
    try:
        response = cluster.open(
            f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log",
            query=query,
            accept="application/json, */*",
        )
        data = response.read()
    except EksOpsError as exc:  # a container still waiting to start, say
        return ContainerLog(pod=pod, container=container, lines=[], error=exc.message)
    except Exception as exc:
        return ContainerLog(pod=pod, container=container, lines=[], error=str(exc))
    text = data.decode("utf-8", errors="replace")
    return ContainerLog(
        pod=pod,
        container=container + (" (previous run)" if previous else ""),
        lines=text.splitlines()[-tail:],
        truncated=len(data) >= MAX_BYTES_PER_CONTAINER,
    )


def get_job_logs(
    *,
    cluster: ClusterClient,
    name: str,
    namespace: str,
    tail_lines: int,
    tenant: str | None = None,
) -> JobLogs:
    """Return the last ``tail_lines`` of every container of Job ``name``'s newest pods."""
    with log_operation(logger, "get_job_logs", job=name, namespace=namespace):
        listed = cluster.request(
            "GET",
            f"/api/v1/namespaces/{quote(namespace, safe='')}/pods",
            query={"labelSelector": f"batch.kubernetes.io/job-name={name}"},
        )
        pods: list[dict[str, Any]] = sorted(
            listed.get("items") or [],
            key=lambda pod: (pod.get("metadata") or {}).get("creationTimestamp") or "",
            reverse=True,
        )[:MAX_PODS]
        for pod in pods:  # another tenant's Job reads as missing, as in get_job_status
            refuse_foreign(pod, tenant=tenant, kind="jobs", name=name)
        if not pods:
            job = cluster.request("GET", jobs_path(namespace, name))  # a missing Job: NotFound
            refuse_foreign(job, tenant=tenant, kind="jobs", name=name)
            raise NotFound(
                f"Job {name} in namespace {namespace} has no pods (removed after it ended, "
                "or none started yet)",
                code="NoPods",
            )
        logs = []
        for pod in pods:
            pod_name = str((pod.get("metadata") or {}).get("name"))
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                container = str(status.get("name"))
                # A restarted container's previous run first: that is where it failed.
                restarted = bool((status.get("lastState") or {}).get("terminated"))
                for previous in (True, False) if restarted else (False,):
                    logs.append(
                        _log(
                            cluster,
                            namespace,
                            pod_name,
                            container=container,
                            tail=tail_lines,
                            previous=previous,
                        )
                    )
        return JobLogs(job_name=name, namespace=namespace, logs=logs)
