"""The ``eksops`` command line: submit operations, poll requests, start a worker.

Each operation command validates its input, enqueues it and prints the request ID;
``--wait SECONDS`` blocks for the outcome, ``--json`` prints one machine-readable
object ``{"request_id", "state", "result" | "error"}``. Exit codes: 0 submitted or
succeeded, 1 the operation failed, 2 invalid input or configuration, 3 still running
when ``--wait`` ran out, 4 unknown request ID.
"""

from __future__ import annotations

import click
from pydantic import ValidationError

from producer.cli import bulk, operations
from producer.cli.common import fail
from producer.settings import ProducerSettings
from worker.logs import configure_logging
from worker.settings import describe_settings_error


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
        fail(f"invalid configuration: {describe_settings_error(exc)}")
    configure_logging(settings.log_level, settings.log_format)


for command in (
    operations.create_job,
    operations.job_status,
    operations.delete_job,
    operations.create_namespace,
    operations.delete_namespace,
    bulk.create_jobs,
    operations.task,
    bulk.batch,
    operations.worker,
):
    main.add_command(command)
