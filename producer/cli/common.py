"""What every eksops command shares: output, exit codes, options, errors, the client.

Exit codes (also in ``eksops --help``): 0 submitted or succeeded, 1 the operation
failed (or was cancelled, or a tenant quota refused it), 2 invalid input or
configuration (a request ID reused for another request, or outside the tenant's scope
or Job policy, too), 3 still running when ``--wait`` ran out, 4
unknown request or batch ID, 5 eksops could not reach its queue (Redis).

Errors never end in a traceback: every eksops error becomes one line on stderr (or,
with ``--json``, one ``{"error": {...}}`` object on stdout) and its exit code, in
:func:`fail` and :func:`failure_code`; ``producer.cli.main`` catches whatever escapes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from producer.client import EksOps, Submission
from producer.gateway.keyring import Keyring
from worker.contracts import ClusterRef, RequestState, RequestStatus
from worker.errors import (
    ConfigurationInvalid,
    EksOpsError,
    InvalidRequest,
    OutOfScope,
    PolicyViolation,
    QueueUnavailable,
    RequestIdReused,
    StillRunning,
    UnknownRequest,
)
from worker.tenants import Tenant
from worker.validation import describe

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PENDING, EXIT_UNKNOWN, EXIT_UNAVAILABLE = range(6)
EXIT_CODES = (
    "Exit codes: 0 submitted or succeeded, 1 the operation failed or was cancelled, 2 invalid "
    "input or configuration (or a request ID reused for another request), 3 still running "
    "when --wait ran out, 4 unknown request or batch ID, 5 the queue (Redis) is unreachable."
)

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
# Whether this process's command was asked for --json (one command per process).
_output = {"json": False}


def json_mode() -> bool:
    """Return whether the running command was asked for ``--json`` output."""
    return _output["json"]


def failure_code(error: EksOpsError) -> int:
    """Return the exit code an eksops error ends the command with."""
    refused = InvalidRequest | ConfigurationInvalid | RequestIdReused | OutOfScope | PolicyViolation
    if isinstance(error, refused):
        return EXIT_INVALID
    if isinstance(error, UnknownRequest):
        return EXIT_UNKNOWN
    if isinstance(error, StillRunning):
        return EXIT_PENDING
    if isinstance(error, QueueUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def fail(message: str | EksOpsError, code: int | None = None) -> NoReturn:
    """End the command with one line (or one JSON error object) and its exit code."""
    error = message if isinstance(message, EksOpsError) else InvalidRequest(message)
    if code is None:
        code = failure_code(error)
    if json_mode():
        out.print_json(data={"error": error.to_info().model_dump(exclude_none=True)})
    else:
        err.print(f"[red]error:[/red] {escape(error.message)}", markup=True)
    sys.exit(code)


def client() -> EksOps:
    """Return the library, configured from the environment (and ``--tenant``)."""
    try:
        return EksOps(tenant=tenant_of(_tenant_option()))
    except ConfigurationInvalid as exc:
        fail(f"invalid configuration: {exc.message}", EXIT_INVALID)


def _tenant_option() -> str | None:
    context = click.get_current_context(silent=True)
    obj = context.find_root().obj if context is not None else None
    return obj.get("tenant") if isinstance(obj, dict) else None


def tenant_of(name: str | None) -> Tenant | str | None:
    """Return the tenant named by ``--tenant``: as the keys file has it, or by name alone."""
    if name is None:
        return None
    path = os.environ.get("GATEWAY_KEYS_FILE")
    if not path:
        return name
    known = Keyring(keys_file=Path(path)).tenants()
    if name not in known:
        raise ConfigurationInvalid(f"tenant {name!r} is not in GATEWAY_KEYS_FILE {path}")
    return known[name]


def _remember_json(_context: click.Context, _parameter: click.Parameter, value: bool) -> bool:
    _output["json"] = _output["json"] or value
    return value


def wait_option(help_text: str = "Wait up to SECONDS for the result.") -> Callable[[F], F]:
    """The ``--wait SECONDS`` option (zero or more)."""
    return click.option(
        "--wait",
        "wait",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help=help_text,
    )


def json_option(help_text: str = "Print one JSON object.") -> Callable[[F], F]:
    """The ``--json`` flag (also makes errors print as a JSON object)."""
    return click.option(
        "--json", "as_json", is_flag=True, help=help_text, callback=_remember_json, is_eager=True
    )


def callback_option() -> Callable[[F], F]:
    """The ``--callback-url`` option: where the workers POST each end, signed."""
    return click.option(
        "--callback-url",
        help="POST each terminal transition (the request's end; a created Job's end) to "
        "this http(s) URL as signed JSON.",
    )


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
            callback_option(),
        ]
    ):
        command = decorator(command)
    return command


def cluster_ref(name: str | None, region: str | None) -> ClusterRef | None:
    """Return the cluster the command names, if any."""
    if name is None:
        if region is not None:
            fail("--region needs --cluster")
        return None
    try:
        return ClusterRef(name=name, region=region)
    except ValidationError as exc:
        fail(describe(exc.errors()))


def _status_json(status: RequestStatus) -> dict[str, Any]:
    payload: dict[str, Any] = {"request_id": status.request_id, "state": status.state.value}
    if status.tenant is not None:
        payload["tenant"] = status.tenant
    if status.error is not None:
        payload["error"] = status.error.model_dump(exclude_none=True)
    else:
        payload["result"] = status.result
    if status.callbacks:
        payload["callbacks"] = {
            kind: delivery.model_dump(exclude_none=True)
            for kind, delivery in status.callbacks.items()
        }
    return payload


def _print_callbacks(status: RequestStatus) -> None:
    for kind, delivery in status.callbacks.items():
        line = f"  callback ({kind}'s end): {delivery.state} after {delivery.attempts} attempt(s)"
        if delivery.error:
            line += f"; last error: {delivery.error}"
        out.print(escape(line))


def _exit_code(status: RequestStatus) -> int:
    return {
        RequestState.SUCCEEDED: EXIT_OK,
        RequestState.FAILED: EXIT_FAILED,
        RequestState.CANCELLED: EXIT_FAILED,
        RequestState.UNKNOWN: EXIT_UNKNOWN,
    }.get(status.state, EXIT_PENDING)


def shown(value: object) -> str:
    """Return a result value for text output (``-`` for nothing)."""
    return "-" if value is None else str(value)


def report(status: RequestStatus, *, as_json: bool, waited: bool) -> NoReturn:
    """Print a request's status and exit with its code."""
    code = _exit_code(status)
    if not waited and code == EXIT_PENDING:
        code = EXIT_OK
    if as_json:
        out.print_json(data=_status_json(status))
        sys.exit(code)
    if status.state is RequestState.SUCCEEDED:
        out.print(f"request {status.request_id} succeeded")
        for key, value in (status.result or {}).items():
            out.print(f"  {key}: {shown(value)}")
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
    if status.tenant is not None:
        out.print(f"  tenant: {status.tenant}")
    _print_callbacks(status)
    sys.exit(code)


def submit(
    action: Callable[[EksOps], Submission], *, wait: float | None, as_json: bool
) -> NoReturn:
    """Submit through ``action``, then report the status (waiting if asked)."""
    eksops = client()
    submission = action(eksops)
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
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"{path} is not UTF-8 text: {exc}")
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid YAML or JSON: {exc}")
    except RecursionError:
        fail(f"{path} nests too deeply to be a manifest")
    if len(documents) != 1:
        fail(f"{path} must hold exactly one Job manifest, found {len(documents)}")
    manifest = documents[0]
    if not isinstance(manifest, dict):
        fail(f"{path} must hold a Job manifest (a mapping), not {type(manifest).__name__}")
    return manifest
