"""The ``eksops`` command line: submit operations, poll requests, start a worker.

Each operation command validates its input, enqueues it and prints the request ID;
``--wait SECONDS`` blocks for the outcome, ``--json`` prints one machine-readable
object ``{"request_id", "state", "result" | "error"}``. Exit codes: 0 submitted or
succeeded, 1 the operation failed, 2 invalid input or configuration, 3 still running
when ``--wait`` ran out, 4 unknown request ID.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console

from producer.client import EksOps, Submission
from producer.settings import ProducerSettings
from worker.contracts import ClusterRef, RequestState, RequestStatus
from worker.errors import InvalidRequest
from worker.logs import configure_logging
from worker.settings import ConfigurationInvalid, describe_settings_error

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PENDING, EXIT_UNKNOWN = 0, 1, 2, 3, 4

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True)
    sys.exit(code)


def _client() -> EksOps:
    try:
        return EksOps()
    except (ConfigurationInvalid, ValidationError) as exc:
        _fail(f"invalid configuration: {describe_settings_error(exc)}")


def request_options(command: F) -> F:
    """Add the options every submitting command shares."""
    for decorator in reversed(
        [
            click.option(
                "--request-id", help="Use this request ID (a UUID); resubmitting it is a no-op."
            ),
            click.option(
                "--wait",
                "wait",
                type=float,
                default=None,
                metavar="SECONDS",
                help="Wait for the result.",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
            click.option("--cluster", help="EKS cluster name (default: the worker's)."),
            click.option("--region", help="AWS region of --cluster."),
        ]
    ):
        command = decorator(command)
    return command


def _cluster(name: str | None, region: str | None) -> ClusterRef | None:
    if name is None:
        if region is not None:
            _fail("--region needs --cluster")
        return None
    try:
        return ClusterRef(name=name, region=region)
    except ValidationError as exc:
        _fail(str(exc.errors()[0]["msg"]).removeprefix("Value error, "))


def _status_json(status: RequestStatus) -> dict[str, Any]:
    payload: dict[str, Any] = {"request_id": status.request_id, "state": status.state.value}
    if status.error is not None:
        payload["error"] = status.error.model_dump(exclude_none=True)
    else:
        payload["result"] = status.result
    return payload


def _exit_code(status: RequestStatus) -> int:
    return {
        RequestState.SUCCEEDED: EXIT_OK,
        RequestState.FAILED: EXIT_FAILED,
        RequestState.UNKNOWN: EXIT_UNKNOWN,
    }.get(status.state, EXIT_PENDING)


def _report(status: RequestStatus, *, as_json: bool, waited: bool) -> NoReturn:
    code = _exit_code(status)
    if not waited and code == EXIT_PENDING:
        code = EXIT_OK
    if as_json:
        out.print_json(data=_status_json(status))
        sys.exit(code)
    if status.state is RequestState.SUCCEEDED:
        out.print(f"request {status.request_id} succeeded")
        for key, value in (status.result or {}).items():
            out.print(f"  {key}: {value}")
    elif status.error is not None:
        error = status.error
        err.print(
            f"request {status.request_id} {status.state.value}: "
            f"{error.http_status} {error.code}: {error.message}"
        )
    elif status.state is RequestState.UNKNOWN:
        err.print(f"request {status.request_id} is unknown: never submitted, or its result expired")
    else:
        out.print(f"request {status.request_id} is {status.state.value}")
        out.print(f"  poll with: eksops task {status.request_id} --wait 60")
    sys.exit(code)


def _submit(
    action: Callable[[EksOps], Submission], *, wait: float | None, as_json: bool
) -> NoReturn:
    client = _client()
    try:
        submission = action(client)
    except InvalidRequest as exc:
        _fail(str(exc))
    if wait is None:
        status = client.status(submission.request_id)
    else:
        status = client.wait(submission.request_id, wait)
    if submission.duplicate and not as_json:
        err.print(f"request {submission.request_id} was already submitted; showing its status")
    _report(status, as_json=as_json, waited=wait is not None)


def load_manifest(path: str) -> dict[str, Any]:
    """Read one Job manifest from a YAML or JSON file (``-`` for standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        _fail(f"{path} is not valid YAML or JSON: {exc}")
    if len(documents) != 1:
        _fail(f"{path} must hold exactly one Job manifest, found {len(documents)}")
    manifest = documents[0]
    if not isinstance(manifest, dict):
        _fail(f"{path} must hold a Job manifest (a mapping), not {type(manifest).__name__}")
    return manifest


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    envvar="LOG_LEVEL",
    default="WARNING",
    show_default=True,
    help="Log level on stderr.",
)
def main(log_level: str) -> None:
    """Run Kubernetes operations on EKS through the eksops queue."""
    try:
        settings = ProducerSettings(log_level=log_level)
    except ValidationError as exc:
        _fail(f"invalid configuration: {describe_settings_error(exc)}")
    configure_logging(settings.log_level, settings.log_format)


@main.command("create-job")
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
    ref = _cluster(cluster, region)
    _submit(
        lambda c: c.create_job(manifest, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@main.command("job-status")
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
    ref = _cluster(cluster, region)
    _submit(
        lambda c: c.get_job_status(job_name, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@main.command("delete-job")
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
    ref = _cluster(cluster, region)
    _submit(
        lambda c: c.delete_job(job_name, namespace, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@main.command("create-namespace")
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
    ref = _cluster(cluster, region)
    _submit(
        lambda c: c.create_namespace(namespace_name, request_id=request_id, cluster=ref),
        wait=wait,
        as_json=as_json,
    )


@main.command("delete-namespace")
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
    ref = _cluster(cluster, region)
    _submit(
        lambda c: c.delete_namespace(
            namespace_name, allow_unmanaged=allow_unmanaged, request_id=request_id, cluster=ref
        ),
        wait=wait,
        as_json=as_json,
    )


@main.command("task")
@click.argument("request_id")
@click.option(
    "--wait", "wait", type=float, default=None, metavar="SECONDS", help="Wait for the result."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def task(request_id: str, wait: float | None, as_json: bool) -> None:
    """Show a request's state, result or error."""
    client = _client()
    try:
        status = client.status(request_id) if wait is None else client.wait(request_id, wait)
    except InvalidRequest as exc:
        _fail(str(exc))
    _report(status, as_json=as_json, waited=wait is not None)


@main.command("worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a worker: same as ``celery -A worker worker [CELERY_ARGS]``."""
    celery = shutil.which("celery") or str(Path(sys.executable).with_name("celery"))
    os.execv(celery, [celery, "-A", "worker", "worker", *celery_args])  # noqa: S606 - replaces this process


if __name__ == "__main__":  # pragma: no cover
    main()
