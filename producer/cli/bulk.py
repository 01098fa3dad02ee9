"""Bulk commands: ``create-jobs`` (a JSONL file or a directory of manifests) and ``batch``.

Each input item is either a Job manifest or a request body
(``{"job_manifest": ..., "namespace": ..., "request_id": ...}``); a ``request_id``
per item makes resubmitting the same file harmless. Bad items are listed by where
they were read (``jobs.jsonl:4``, ``dir/b.yaml (document 2)``), good ones enqueued.
``--wait`` follows the batch to the end with a progress bar. Exit codes as for single
requests: 1 if any item failed or was refused.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producer.batches import FAILED_SHOWN, BatchInterrupted, BatchStatus, BatchSubmission
from producer.cancel import BatchCancellation
from producer.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_UNKNOWN,
    callback_option,
    client,
    err,
    fail,
    json_option,
    out,
    wait_option,
)
from producer.client import EksOps
from worker.contracts import Operation

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
_SHOWN_ERRORS = 20


@dataclass(frozen=True)
class Item:
    """One create-job request read from the input, and where it was read."""

    arguments: dict[str, Any]
    source: str  # "jobs.jsonl:4" or "manifests/b.yaml (document 2)"


def _documents(path: Path) -> Iterator[tuple[Any, str]]:
    try:
        if path.suffix == ".jsonl":
            yield from _json_lines(path)
        else:
            text = path.read_text(encoding="utf-8")
            documents = (doc for doc in yaml.safe_load_all(text) if doc is not None)
            for number, document in enumerate(documents, 1):
                yield document, f"{path} (document {number})"
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid YAML or JSON: {exc}")
    except UnicodeDecodeError as exc:
        fail(f"{path} is not UTF-8 text: {exc}")
    except RecursionError:
        fail(f"{path} nests too deeply to be a manifest")


def _json_lines(path: Path) -> Iterator[tuple[Any, str]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line), f"{path}:{number}"
                except ValueError as exc:
                    fail(f"{path}:{number} is not JSON: {exc}")


def read_items(source: str, namespace: str) -> Iterator[Item]:
    """Yield create-job requests from a JSONL/YAML file or a directory of manifests."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _MANIFEST_SUFFIXES and p.is_file())
        if not files:
            fail(f"{source} holds no {', '.join(_MANIFEST_SUFFIXES)} files")
    elif path.is_file():
        files = [path]
    else:
        fail(f"{source} is neither a file nor a directory")
    for file in files:
        for document, where in _documents(file):
            if isinstance(document, dict) and "job_manifest" in document:
                yield Item({"namespace": namespace, **document}, where)
            else:
                yield Item({"job_manifest": document, "namespace": namespace}, where)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _print_submission(submission: BatchSubmission, sources: list[str]) -> None:
    out.print(
        f"batch {submission.batch_id}: {submission.accepted} enqueued, "
        f"{submission.duplicates} already submitted, {submission.rejected} refused"
    )
    refused = [item for item in submission.items if item.error]
    for item in refused[:_SHOWN_ERRORS]:
        err.print(f"  {sources[item.index]}: {item.error}")
    if len(refused) > _SHOWN_ERRORS:
        err.print(f"  ... and {len(refused) - _SHOWN_ERRORS} more refused (--json lists them all)")


def _submission_json(submission: BatchSubmission, sources: list[str]) -> dict[str, Any]:
    data = submission.model_dump()
    for item in data["items"]:
        item["source"] = sources[item["index"]]
    return data


def _follow(
    eksops: EksOps, batch_id: str, timeout: float, *, failed_limit: int = FAILED_SHOWN
) -> BatchStatus | None:
    deadline = time.monotonic() + timeout
    status = eksops.batch(batch_id, failed_limit=failed_limit)
    with _progress() as progress:
        task = progress.add_task("running", total=status.total if status else None)
        while status is not None and not status.done and time.monotonic() < deadline:
            time.sleep(1.0)
            status = eksops.batch(batch_id, failed_limit=failed_limit)
            if status is not None:
                finished = status.counts.get("succeeded", 0) + status.counts.get("failed", 0)
                progress.update(task, completed=finished, total=status.total)
    return status


def _view(status: BatchStatus) -> Table:
    """The live view of a batch: its requests by state, its Jobs by phase, failures."""
    table = Table(title=f"batch {status.batch_id}", show_header=True, expand=False)
    table.add_column("")
    for state in ("queued", "started", "retrying", "succeeded", "failed"):
        table.add_column(state, justify="right")
    table.add_row(
        "requests",
        *(
            str(status.counts.get(s, 0))
            for s in ("queued", "started", "retrying", "succeeded", "failed")
        ),
    )
    table.add_section()
    table.add_row("", *("pending", "running", "succeeded", "failed", "deleted"), style="bold")
    table.add_row(
        "jobs",
        *(
            str(status.jobs.get(p, 0))
            for p in ("pending", "running", "succeeded", "failed", "deleted")
        ),
    )
    for job in status.failed_jobs[-5:]:
        table.add_row(
            "",
            f"[red]{job.job_name}[/red]",
            job.reason or "",
            f"exit {job.exit_code}" if job.exit_code is not None else (job.pod_reason or ""),
            (job.last_log_line or "")[:40],
            "",
        )
    return table


def watch_batch(
    eksops: EksOps, batch_id: str, *, failed_limit: int, timeout: float | None
) -> BatchStatus | None:
    """Show the batch live until its requests and its Jobs have all ended."""
    deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
    status = eksops.batch(batch_id, failed_limit=failed_limit)
    if status is None:
        return None
    with Live(_view(status), console=err, refresh_per_second=4) as live:
        while not (status.done and status.jobs_done) and time.monotonic() < deadline:
            time.sleep(1.0)
            status = eksops.batch(batch_id, failed_limit=failed_limit) or status
            live.update(_view(status))
    return status


def _batch_exit(status: BatchStatus | None, *, rejected: int = 0, waited: bool) -> int:
    if status is None:
        return EXIT_UNKNOWN
    if rejected or status.rejected or status.counts.get("failed") or status.jobs.get("failed"):
        return EXIT_FAILED
    if waited and not status.done:
        return EXIT_PENDING
    return EXIT_OK


def _report_cancel(done: BatchCancellation, *, as_json: bool) -> NoReturn:
    if as_json:
        out.print_json(data=done.model_dump())
        sys.exit(EXIT_OK)
    out.print(
        f"batch {done.batch_id} cancelled: {done.cancelled} requests will not run "
        f"({done.already_cancelled} were cancelled before), {done.running} running finish, "
        f"{done.ended} had ended"
    )
    if done.deletion_batch_id:
        out.print(
            f"  deleting the {done.jobs_deleting} Jobs it created: "
            f"eksops batch {done.deletion_batch_id}"
        )
    sys.exit(EXIT_OK)


def _report_batch(status: BatchStatus | None, *, as_json: bool, code: int) -> NoReturn:
    if as_json:
        out.print_json(data=status.model_dump() if status else {"state": "unknown"})
    elif status is None:
        err.print("batch is unknown: never submitted, or it expired")
    else:
        counts = ", ".join(f"{count} {state}" for state, count in status.counts.items() if count)
        out.print(f"batch {status.batch_id}: {status.total} requests: {counts or 'none'}")
        for item in status.failed[:_SHOWN_ERRORS]:
            error = item.error
            if error is not None:
                err.print(f"  {item.request_id}: {error.http_status} {error.code}: {error.message}")
        more = status.counts.get("failed", 0) - min(len(status.failed), _SHOWN_ERRORS)
        if more > 0:
            err.print(f"  ... and {more} more failed (--json --failed-limit N lists them)")
        phases = ", ".join(f"{count} {phase}" for phase, count in status.jobs.items() if count)
        if phases:
            out.print(f"  jobs: {phases}")
        for job in status.failed_jobs[:_SHOWN_ERRORS]:
            exited = f", exit code {job.exit_code}" if job.exit_code is not None else ""
            err.print(
                f"  job {job.namespace}/{job.job_name} failed: {job.reason}{exited}: {job.message}"
            )
    sys.exit(code)


@click.command("create-jobs")
@click.option(
    "-f",
    "--file",
    "source",
    required=True,
    help="A .jsonl/.yaml file, or a directory of manifests.",
)
@click.option(
    "-n", "--namespace", default="default", show_default=True, help="For items that name none."
)
@click.option("--batch-id", help="Use this batch ID (a UUID); default: a new one.")
@callback_option()
@wait_option("Follow the batch to its end.")
@json_option("Print the submission (and status) as JSON.")
def create_jobs(
    source: str,
    namespace: str,
    batch_id: str | None,
    callback_url: str | None,
    wait: float | None,
    as_json: bool,
) -> None:
    """Create many Jobs in one batch."""
    eksops = client()
    items = list(read_items(source, namespace))
    sources = [item.source for item in items]
    with _progress() as progress:
        task = progress.add_task("submitting", total=len(items))

        def counted() -> Iterator[dict[str, Any]]:
            for item in items:
                yield item.arguments
                progress.advance(task)

        try:
            submission = eksops.submit_many(
                Operation.CREATE_JOB, counted(), batch_id=batch_id, callback_url=callback_url
            )
        except BatchInterrupted as exc:
            if exc.submission is not None and not as_json:
                _print_submission(exc.submission, sources)
            fail(exc)
    if as_json and wait is None:
        out.print_json(data=_submission_json(submission, sources))
        sys.exit(EXIT_FAILED if submission.rejected else EXIT_OK)
    if not as_json:
        _print_submission(submission, sources)
    if wait is None:
        sys.exit(EXIT_FAILED if submission.rejected else EXIT_OK)
    status = _follow(eksops, submission.batch_id, wait)
    _report_batch(
        status, as_json=as_json, code=_batch_exit(status, rejected=submission.rejected, waited=True)
    )


@click.command("batch")
@click.argument("batch_id")
@wait_option("Follow the batch to its end.")
@click.option(
    "--failed-limit",
    type=click.IntRange(0, 10_000),
    default=FAILED_SHOWN,
    show_default=True,
    help="How many failed requests to list (first submitted first) with --json.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Show the batch live (requests and Jobs) until every Job it made has ended.",
)
@click.option(
    "--cancel",
    is_flag=True,
    help="Cancel the batch: its requests that have not started never run.",
)
@click.option(
    "--delete-jobs",
    is_flag=True,
    help="With --cancel: also delete the Jobs the batch created (through the queue).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Submit the batch's failed requests again, as a new batch linked to it.",
)
@json_option()
def batch(
    batch_id: str,
    wait: float | None,
    failed_limit: int,
    watch: bool,
    cancel: bool,
    delete_jobs: bool,
    retry_failed: bool,
    as_json: bool,
) -> None:
    """Show a batch's requests by state, its Jobs by phase, and what failed; cancel it,
    or retry what failed."""
    if delete_jobs and not cancel:
        fail("--delete-jobs goes with --cancel")
    if cancel and retry_failed:
        fail("--cancel and --retry-failed cannot go together")
    eksops = client()
    if cancel:
        _report_cancel(eksops.cancel_batch(batch_id, delete_jobs=delete_jobs), as_json=as_json)
    if retry_failed:
        retry = eksops.retry_failed(batch_id)
        if not as_json:
            out.print(f"retrying {retry.accepted} failed requests of batch {batch_id}")
        batch_id = retry.batch_id
    if watch:
        status = watch_batch(eksops, batch_id, failed_limit=failed_limit, timeout=wait)
    elif wait is None:
        status = eksops.batch(batch_id, failed_limit=failed_limit)
    else:
        status = _follow(eksops, batch_id, wait, failed_limit=failed_limit)
    _report_batch(status, as_json=as_json, code=_batch_exit(status, waited=wait is not None))
