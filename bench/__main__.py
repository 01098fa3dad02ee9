"""``python -m bench [--quick] [--profile]``: the one command behind ``make bench``.

Starts everything it measures (Valkey, kubesim, workers) in a temp directory, runs
every phase, prints a table, writes ``bench/results/<timestamp>.{json,md}`` and ends
with the machine-readable ``bench: ...`` line. Exit status 0 when the run completed
(whatever the figures), 1 when a phase could not run.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from dataclasses import replace

from rich.console import Console

from bench import report
from bench.plan import FULL, QUICK
from bench.run import Run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample the worker with py-spy at each concurrency (pip install py-spy)",
    )
    parser.add_argument(
        "--memory-tasks",
        type=int,
        metavar="N",
        help="last memory mark (default 100,000; quick 800); the first is N/10",
    )
    parser.add_argument("--burst-items", type=int, metavar="N", help="size of the burst")
    parser.add_argument("--burst-qps", type=float, metavar="R", help="bench limit, requests/s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--no-task-events",
        action="store_true",
        help="e2e workers send no Celery task events (to measure what Flower's view costs)",
    )
    return parser


def _terminate(signum: int, _frame: object) -> None:
    # Unwind normally, so every child of the stack is stopped (see bench.stack.Child).
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = QUICK if args.quick else FULL
    if args.memory_tasks:
        plan = replace(plan, memory_marks=(max(1, args.memory_tasks // 10), args.memory_tasks))
    if args.burst_items:
        plan = replace(plan, burst_items=args.burst_items)
    if args.no_task_events:
        plan = replace(plan, task_events=False, notes=[*plan.notes, "e2e workers: task events off"])
    if args.burst_qps:
        plan = replace(plan, burst_qps=args.burst_qps, burst_bucket=int(args.burst_qps))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    meta = report.metadata(plan.name)
    started = time.perf_counter()
    with Run(plan, profile=args.profile, keep=args.keep) as run:
        try:
            results = run.run_all()
        except Exception as exc:
            console.print(f"[red]bench: run failed: {type(exc).__name__}: {exc}[/red]")
            console.print(f"logs: {run.directory}" if args.keep else "rerun with --keep for logs")
            return 1
    results["meta"] = meta
    results["wall_seconds"] = time.perf_counter() - started
    report.render(results, console)
    for definition, text in report.DEFINITIONS.items():
        console.print(f"[dim]{definition}: {text}[/dim]")
    json_path, md_path = report.write(results)
    console.print(f"results: {json_path} {md_path}")
    print(report.last_line(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
