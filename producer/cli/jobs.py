"""What the CLI does with Jobs beyond submitting: status from records, waiting, logs.

``job-status`` answers from the job tracker's record when it covers the cluster (no
queue, no API call), else through a queued read. ``--wait-for complete`` on
``create-job`` and ``job-status`` waits for the Job itself to end: exit code 0 when it
succeeded, 1 when it failed (its reason printed), 3 when it still runs at the end of
``--wait``. ``job-logs`` prints the lines of each container; ``--follow`` keeps
printing new lines until the Job ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

from producer.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    client,
    err,
    out,
    shown,
)
from producer.client import EksOps
from worker.contracts import ClusterRef

#: How long --wait-for complete waits when --wait does not say.
DEFAULT_JOB_WAIT_SECONDS = 300.0


def _print_status(status: dict[str, Any]) -> None:
    out.print(f"job {status['namespace']}/{status['job_name']} is {status['state']}")
    for key in ("active", "succeeded", "failed", "start_time", "completion_time", "reason"):
        if key in status:
            out.print(f"  {key}: {shown(status.get(key))}")
    if status.get("message"):
        out.print(f"  message: {status['message']}")
    for waiting in status.get("waiting") or []:
        err.print(
            f"  pod {waiting['pod']} waits: {waiting['reason']}: {waiting.get('message') or ''}"
        )
    for pod in status.get("failed_pods") or []:
        err.print(
            f"  pod {pod['pod']} failed: container {pod.get('container', '?')} "
            f"exit code {shown(pod.get('exit_code'))} ({shown(pod.get('reason'))})"
        )
    tail = status.get("log_tail")
    if tail and tail.get("lines"):
        err.print(f"  last lines of {tail['pod']}/{tail['container']}:")
        for line in tail["lines"][-10:]:
            err.print(f"    {line}")


def _exit_for(status: dict[str, Any], *, waited_for_end: bool) -> int:
    if status["state"] == "failed" or status.get("phase") == "deleted":
        return EXIT_FAILED
    if waited_for_end and status["state"] not in ("completed",):
        return EXIT_PENDING
    return EXIT_OK


def report_job(status: dict[str, Any], *, as_json: bool, waited_for_end: bool) -> NoReturn:
    """Print a Job's status and exit with its code."""
    if as_json:
        out.print_json(data=status)
    else:
        _print_status(status)
    sys.exit(_exit_for(status, waited_for_end=waited_for_end))


def job_status(
    job_name: str,
    namespace: str,
    *,
    cluster: ClusterRef | None,
    wait: float | None,
    wait_for: str | None,
    as_json: bool,
) -> NoReturn:
    """``eksops job-status``: from the record when covered; optionally wait for the end."""
    eksops = client()
    timeout = wait if wait is not None else DEFAULT_JOB_WAIT_SECONDS
    status = eksops.job_status(job_name, namespace, cluster=cluster, timeout=timeout)
    if wait_for:
        record = eksops.wait_for_job(job_name, timeout, namespace=namespace, cluster=cluster)
        status = record.status_body()
    report_job(status, as_json=as_json, waited_for_end=bool(wait_for))


def wait_for_created(
    eksops: EksOps, request_id: str, *, wait: float | None, as_json: bool
) -> NoReturn:
    """``create-job --wait-for complete``: the request, then its Job, to the end."""
    timeout = wait if wait is not None else DEFAULT_JOB_WAIT_SECONDS
    record = eksops.wait_for_job(request_id, timeout)
    report_job(record.status_body(), as_json=as_json, waited_for_end=True)


def print_logs(logs: dict[str, Any], *, as_json: bool, seen: dict[str, int] | None = None) -> None:
    """Print each container's lines (only those not printed yet, with ``seen``)."""
    if as_json:
        out.print_json(data=logs)
        return
    if logs.get("source") == "tracker" and seen is None:
        err.print("(the pods are gone: the tail eksops captured when the container failed)")
    for entry in logs.get("logs") or []:
        label = f"{entry['pod']}/{entry['container']}"
        lines = entry.get("lines") or []
        if seen is None:
            out.print(f"==> {label} <==")
            for line in lines:
                out.print(line, markup=False)
            if entry.get("error"):
                err.print(f"    ({entry['error']})")
            continue
        for line in lines[seen.get(label, 0) :]:
            out.print(f"{label}: {line}", markup=False)
        seen[label] = len(lines)


def follow_logs(
    job_name: str,
    namespace: str,
    *,
    tail_lines: int,
    cluster: ClusterRef | None,
    wait: float | None,
) -> NoReturn:
    """``job-logs --follow``: print new lines every two seconds until the Job ends."""
    eksops = client()
    seen: dict[str, int] = {}
    deadline = time.monotonic() + (wait if wait is not None else float("inf"))
    while True:
        logs = eksops.job_logs(job_name, namespace, tail_lines=tail_lines, cluster=cluster)
        print_logs(logs, as_json=False, seen=seen)
        record = eksops.job(job_name, namespace, cluster=cluster)
        if (record is not None and record.ended) or time.monotonic() > deadline:
            sys.exit(EXIT_OK if record is None or record.phase == "succeeded" else EXIT_FAILED)
        time.sleep(2.0)
