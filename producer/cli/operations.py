"""The per-request commands: the five operations, ``task`` and ``worker``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from producer.cli.common import (
    client,
    cluster_ref,
    fail,
    json_option,
    load_manifest,
    report,
    request_options,
    submit,
    wait_option,
)
from worker.errors import InvalidRequest


@click.command("create-job")
@click.option(
    "-f", "--file", "path", required=True, help="Job manifest, YAML or JSON ('-': stdin)."
)
@click.option("-n", "--namespace", default="default", show_default=True)
@request_options
def create_job(
    path: str,
    namespace: str,
    request_id: str | None,
    wait: float | None,
    as_json: bool,
    cluster: str | None,
    region: str | None,
) -> None:
    """Create a Job (its namespace is created if missing)."""
    manifest = load_manifest(path)
    ref = cluster_ref(cluster, region)
    submit(
        lambda c: c.create_job(manifest, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@click.command("job-status")
@click.argument("job_name")
@click.option("-n", "--namespace", default="default", show_default=True)
@request_options
def job_status(
    job_name: str,
    namespace: str,
    request_id: str | None,
    wait: float | None,
    as_json: bool,
    cluster: str | None,
    region: str | None,
) -> None:
    """Read a Job's state and counters."""
    ref = cluster_ref(cluster, region)
    submit(
        lambda c: c.get_job_status(job_name, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@click.command("delete-job")
@click.argument("job_name")
@click.option("-n", "--namespace", default="default", show_default=True)
@request_options
def delete_job(
    job_name: str,
    namespace: str,
    request_id: str | None,
    wait: float | None,
    as_json: bool,
    cluster: str | None,
    region: str | None,
) -> None:
    """Delete a Job and its pods."""
    ref = cluster_ref(cluster, region)
    submit(
        lambda c: c.delete_job(job_name, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@click.command("create-namespace")
@click.argument("namespace_name")
@request_options
def create_namespace(
    namespace_name: str,
    request_id: str | None,
    wait: float | None,
    as_json: bool,
    cluster: str | None,
    region: str | None,
) -> None:
    """Create a Namespace."""
    ref = cluster_ref(cluster, region)
    submit(
        lambda c: c.create_namespace(namespace_name, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@click.command("delete-namespace")
@click.argument("namespace_name")
@click.option(
    "--allow-unmanaged", is_flag=True, help="Also delete a namespace eksops did not create."
)
@request_options
def delete_namespace(
    namespace_name: str,
    allow_unmanaged: bool,
    request_id: str | None,
    wait: float | None,
    as_json: bool,
    cluster: str | None,
    region: str | None,
) -> None:
    """Delete a Namespace (never a protected one)."""
    ref = cluster_ref(cluster, region)
    submit(
        lambda c: c.delete_namespace(
            namespace_name, allow_unmanaged=allow_unmanaged, request_id=request_id, cluster=ref
        ),
        wait=wait,
        as_json=as_json,
    )


@click.command("task")
@click.argument("request_id")
@wait_option()
@json_option()
def task(request_id: str, wait: float | None, as_json: bool) -> None:
    """Show a request's state, result or error."""
    eksops = client()
    try:
        status = eksops.status(request_id) if wait is None else eksops.wait(request_id, wait)
    except InvalidRequest as exc:
        fail(str(exc))
    report(status, as_json=as_json, waited=wait is not None)


@click.command(
    "worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a worker: same as ``celery -A worker worker [CELERY_ARGS]``."""
    celery = shutil.which("celery") or str(Path(sys.executable).with_name("celery"))
    os.execv(celery, [celery, "-A", "worker", "worker", *celery_args])  # noqa: S606 - replaces this process
