"""The per-request commands: one per operation of ``worker.catalog``, plus ``task``.

Each operation command is built from its declaration: its inputs (a positional name, a
``-n`` option, a flag, or a manifest file) become the command's parameters, its summary
the help, and the request options every submitting command shares are added.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from producer.cli import jobs
from producer.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_OK,
    client,
    cluster_ref,
    err,
    json_option,
    load_manifest,
    out,
    report,
    request_options,
    submit,
    wait_option,
)
from producer.client import EksOps, Submission
from worker.catalog import CATALOG, CliInput, Spec
from worker.contracts import Operation, RequestState


def _parameter(spec: Spec, given: CliInput) -> Callable[[Any], Any]:
    """Return the click decorator for one input of ``spec``'s command."""
    field = spec.request.model_fields[given.field]
    names = [f"--{given.field.replace('_', '-')}"]
    if given.short:
        names.insert(0, given.short)
    if given.kind == "argument":
        return click.argument(given.field)
    if given.kind == "manifest":
        return click.option(
            given.short or "-f", "--file", given.field, required=True, help=given.help
        )
    if given.kind == "flag":
        return click.option(*names, given.field, is_flag=True, help=given.help)
    return click.option(
        *names, given.field, default=field.default, show_default=True, help=given.help
    )


_WAIT_FOR = click.option(
    "--wait-for",
    "wait_for",
    type=click.Choice(["complete"]),
    default=None,
    help="Also wait (up to --wait, 300 s by default) for the Job itself to end: exit 0 "
    "when it succeeded, 1 when it failed (its reason printed), 3 when it still runs.",
)
_FOLLOW = click.option("--follow", is_flag=True, help="Keep printing new lines until the Job ends.")


def _command(spec: Spec) -> click.Command:
    def run(
        *,
        request_id: str | None,
        wait: float | None,
        as_json: bool,
        cluster: str | None,
        region: str | None,
        callback_url: str | None,
        wait_for: str | None = None,
        follow: bool = False,
        **values: Any,
    ) -> None:
        for given in spec.inputs:
            if given.kind == "manifest":
                values[given.field] = load_manifest(values[given.field])
        ref = cluster_ref(cluster, region)
        if spec.reads_record and request_id is None:
            jobs.job_status(
                values["job_name"],
                values["namespace"],
                cluster=ref,
                wait=wait,
                wait_for=wait_for,
                as_json=as_json,
            )
        if spec.operation is Operation.GET_JOB_LOGS:
            if follow:
                jobs.follow_logs(
                    values["job_name"],
                    values["namespace"],
                    tail_lines=values["tail_lines"],
                    cluster=ref,
                    wait=wait,
                )
            logs = client().job_logs(
                values["job_name"],
                values["namespace"],
                tail_lines=values["tail_lines"],
                cluster=ref,
                timeout=wait if wait is not None else 60.0,
            )
            jobs.print_logs(logs, as_json=as_json)
            sys.exit(EXIT_OK)
        if ref is not None:
            values["cluster"] = ref.model_dump(exclude_none=True)

        def send(eksops: EksOps) -> Submission:
            return eksops.submit(
                spec.operation, values, request_id=request_id, callback_url=callback_url
            )

        if wait_for:
            eksops = client()
            submission = send(eksops)
            jobs.wait_for_created(eksops, submission.request_id, wait=wait, as_json=as_json)
        submit(send, wait=wait, as_json=as_json)

    command: Callable[..., None] = request_options(run)
    if spec.waits_for_job:
        command = _WAIT_FOR(command)
    if spec.operation is Operation.GET_JOB_LOGS:
        command = _FOLLOW(command)
    for given in reversed(spec.inputs):
        command = _parameter(spec, given)(command)
    return click.command(spec.command, help=f"{spec.summary}\n\n{EXIT_CODES}")(command)


COMMANDS = [_command(spec) for spec in CATALOG.values()]


@click.command("task", help=f"Show a request's state, result or error.\n\n{EXIT_CODES}")
@click.argument("request_id")
@wait_option()
@json_option()
def task(request_id: str, wait: float | None, as_json: bool) -> None:
    eksops = client()
    status = eksops.status(request_id) if wait is None else eksops.wait(request_id, wait)
    report(status, as_json=as_json, waited=wait is not None)


@click.command(
    "cancel",
    help="Cancel a request that has not started: it never runs. A running one finishes."
    "\n\nExit codes: 0 cancelled, 1 it had started (it finishes) or ended, 4 unknown request "
    "ID, 5 the queue (Redis) is unreachable.",
)
@click.argument("request_id")
@json_option()
def cancel(request_id: str, as_json: bool) -> None:
    status = client().cancel(request_id)
    cancelled = status.state is RequestState.CANCELLED
    if as_json:
        out.print_json(data={"request_id": status.request_id, "state": status.state.value})
    elif cancelled:
        out.print(f"request {status.request_id} cancelled: it will not run")
    else:
        err.print(
            f"request {status.request_id} is {status.state.value}: too late to cancel"
            + (" (it finishes, then reads as it ended)" if not status.state.is_terminal else "")
        )
    sys.exit(EXIT_OK if cancelled else EXIT_FAILED)


@click.command("doctor", context_settings={"ignore_unknown_options": True})
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor(as_json: bool) -> None:
    """Check this machine can run eksops: Redis, AWS, the cluster, RBAC, workers.

    Each check prints PASS or FAIL with what it saw and, when it failed, the fix. Run it
    where a worker runs: it uses this machine's credentials. Exit code 0 when every check
    passed, 1 when one failed, 2 when the settings are invalid.
    """
    # The checks use the worker's cluster code; the CLI runs them as their own process.
    python = sys.executable
    os.execv(python, [python, "-m", "worker.doctor", *(["--json"] if as_json else [])])  # noqa: S606


@click.command(
    "worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Start a worker: same as celery -A worker worker [CELERY_ARGS]."""
    celery = shutil.which("celery") or str(Path(sys.executable).with_name("celery"))
    os.execv(celery, [celery, "-A", "worker", "worker", *celery_args])  # noqa: S606 - replaces this process
