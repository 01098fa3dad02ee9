"""What every eksops command shares: output, exit codes, options, the client.

Exit codes: 0 submitted or succeeded, 1 the operation failed, 2 invalid input or
configuration, 3 still running when ``--wait`` ran out, 4 unknown request ID.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console

from producer.client import EksOps, Submission
from worker.contracts import ClusterRef, RequestState, RequestStatus
from worker.errors import InvalidRequest
from worker.settings import ConfigurationInvalid, describe_settings_error

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PENDING, EXIT_UNKNOWN = 0, 1, 2, 3, 4

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True)
    sys.exit(code)


def client() -> EksOps:
    try:
        return EksOps()
    except (ConfigurationInvalid, ValidationError) as exc:
        fail(f"invalid configuration: {describe_settings_error(exc)}")


def wait_option(help_text: str = "Wait for the result.") -> Callable[[F], F]:
    """The ``--wait SECONDS`` option."""
    return click.option(
        "--wait", "wait", type=float, default=None, metavar="SECONDS", help=help_text
    )


def json_option(help_text: str = "Print one JSON object.") -> Callable[[F], F]:
    """The ``--json`` flag."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def request_options(command: F) -> F:
    """Add the options every submitting command shares."""
    for decorator in reversed(
        [
            click.option(
                "--request-id", help="Use this request ID (a UUID); resubmitting it is a no-op."
            ),
            wait_option(),
            json_option(),
            click.option("--cluster", help="EKS cluster name (default: the worker's)."),
            click.option("--region", help="AWS region of --cluster."),
        ]
    ):
        command = decorator(command)
    return command


def cluster_ref(name: str | None, region: str | None) -> ClusterRef | None:
    if name is None:
        if region is not None:
            fail("--region needs --cluster")
        return None
    try:
        return ClusterRef(name=name, region=region)
    except ValidationError as exc:
        fail(str(exc.errors()[0]["msg"]).removeprefix("Value error, "))


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


def report(status: RequestStatus, *, as_json: bool, waited: bool) -> NoReturn:
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


def submit(
    action: Callable[[EksOps], Submission], *, wait: float | None, as_json: bool
) -> NoReturn:
    eksops = client()
    try:
        submission = action(eksops)
    except InvalidRequest as exc:
        fail(str(exc))
    if wait is None:
        status = eksops.status(submission.request_id)
    else:
        status = eksops.wait(submission.request_id, wait)
    if submission.duplicate and not as_json:
        err.print(f"request {submission.request_id} was already submitted; showing its status")
    report(status, as_json=as_json, waited=wait is not None)


def load_manifest(path: str) -> dict[str, Any]:
    """Read one Job manifest from a YAML or JSON file (``-`` for standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid YAML or JSON: {exc}")
    if len(documents) != 1:
        fail(f"{path} must hold exactly one Job manifest, found {len(documents)}")
    manifest = documents[0]
    if not isinstance(manifest, dict):
        fail(f"{path} must hold a Job manifest (a mapping), not {type(manifest).__name__}")
    return manifest
