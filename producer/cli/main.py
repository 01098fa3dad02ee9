"""The ``eksops`` command line: submit operations, poll requests, start a worker.

Each operation command validates its input, enqueues it and prints the request ID;
``--wait SECONDS`` blocks for the outcome, ``--json`` prints one machine-readable
object ``{"request_id", "state", "result" | "error"}``. No command ends in a traceback:
:func:`main` turns anything that escapes into one line and an exit code (see
``producer.cli.common``).
"""

from __future__ import annotations

import sys

import click

from producer.cli import bulk, keys, operations, queue
from producer.cli.common import EXIT_CODES, EXIT_FAILED, err, fail
from producer.settings import ProducerSettings
from worker.errors import EksOpsError
from worker.logs import configure_logging
from worker.validation import validate_settings


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    help=f"Run Kubernetes operations on EKS through the eksops queue.\n\n{EXIT_CODES}",
)
@click.option(
    "--log-level",
    envvar="LOG_LEVEL",
    default="WARNING",
    show_default=True,
    help="Log level on stderr.",
)
@click.option(
    "--tenant",
    envvar="EKSOPS_TENANT",
    help="Submit for this tenant: its scope, Job policy and quotas (from GATEWAY_KEYS_FILE, "
    "when set) apply, and requests and audit lines name it.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, tenant: str | None) -> None:
    ctx.obj = {"tenant": tenant}
    try:
        settings = validate_settings(ProducerSettings, log_level=log_level)
    except EksOpsError as exc:
        fail(f"invalid configuration: {exc.message}")
    configure_logging(settings.log_level, settings.log_format)


for command in (
    *operations.COMMANDS,
    bulk.create_jobs,
    operations.task,
    operations.cancel,
    bulk.batch,
    queue.queue,
    operations.doctor,
    keys.keys,
    operations.worker,
):
    cli.add_command(command)


def main() -> None:
    """Run the command line; every error ends as one line and a documented exit code."""
    try:
        cli.main(prog_name="eksops", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        err.print("aborted")
        sys.exit(EXIT_FAILED)
    except EksOpsError as exc:
        fail(exc)
    except Exception as exc:
        fail(EksOpsError(f"internal error: {type(exc).__name__}: {exc}"), EXIT_FAILED)
        sys.exit(EXIT_FAILED)
    sys.exit(0)
