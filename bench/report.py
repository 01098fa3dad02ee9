"""Show a run's figures: a table on the terminal, JSON + Markdown files, one last line.

Every figure sits next to the baseline measured in the same run, and where the issue
sets a target the table says whether this run met it (a report, not a test: timings
are never asserted). The last printed line is for machines:

    bench: e2e/direct=R accept/s=N accept/raw=R burst_lost=0 burst_duplicates=0 p50_added_ms=X
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stack import ROOT

RESULTS = ROOT / "bench" / "results"

DEFINITIONS = {
    "direct": "the kubernetes client's BatchV1Api.create_namespaced_job with its defaults, "
    "from N threads of one process (configured like the worker: DescribeCluster, verified "
    "TLS, IAM token; the same Job body), closed loop",
    "eksops closed loop": "N caller threads: EksOps.create_job -> result published -> "
    "EksOps.status() says succeeded -> next; workers with N threads in all (2 processes) "
    "serve them",
    "eksops drain": "the same create-jobs submitted at once (submit_many: a burst travels "
    "in chunks of requests), drained by N worker threads in all (2 processes); rate = tasks / "
    "(submit start -> last result stored and acked)",
    "added latency": "percentile of the eksops closed-loop latency (submit call start -> "
    "status() returns succeeded) minus the same percentile of the direct call, same N",
    "stages": "submit = the create_job call; queued = submitted_at -> started_at (a worker "
    "thread began the task); run = started_at -> date_done (API call + the worker's own "
    "work); notify = result stored -> status() returned succeeded to the caller",
    "job tracker": "a worker of its own tracks Jobs the harness creates straight into "
    "kubesim (labelled as eksops labels them), each ending a fixed time after creation; "
    "lag = a waiter subscribed to the Job's notification channel woken with its end, "
    "minus the moment the harness's own watch saw the Job's Complete condition",
    "accept": "one submit_many(durable=True) of N create-jobs: validated, recorded, enqueued "
    "and confirmed in the AOF (WAITAOF); raw = LPUSH of each item's own task message (as a "
    "per-message publish would write it), pipelined",
}


@dataclass
class Row:
    """One line of the report."""

    section: str
    metric: str
    value: str
    target: str = ""


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _verdict(ok: bool, text: str) -> str:
    return f"{'met' if ok else 'NOT met'} ({text})"


def rows(results: dict[str, Any]) -> list[Row]:
    """Turn a run's results into report rows."""
    out: list[Row] = []
    ceiling = results.get("ceiling")
    if ceiling:
        out.append(
            Row(
                "Celery ceiling",
                f"no-op drain, threads x{ceiling['concurrency']}",
                f"{_fmt_rate(ceiling['rate'])} ({ceiling['tasks']:,} tasks)",
            )
        )
        loop = ceiling["loop"]
        out.append(
            Row(
                "Celery ceiling",
                "no-op round trip, closed loop",
                f"{_fmt_rate(loop['rate'])}, p50 {loop['p50_ms']:.1f} ms, "
                f"p99 {loop['p99_ms']:.1f} ms",
            )
        )
        per_task = ceiling["cpu"]["per_task_ms"]
        out.append(Row("Celery ceiling", "CPU ms per no-op task", _cpu_text(per_task)))
    for concurrency, block in results.get("throughput", {}).items():
        section = f"Throughput c={concurrency}"
        direct, e2e = block["direct"], block["e2e"]
        out.append(
            Row(
                section,
                "direct Kubernetes client",
                f"{_fmt_rate(direct['rate'])}, p50 {direct['p50_ms']:.1f} / p95 "
                f"{direct['p95_ms']:.1f} / p99 {direct['p99_ms']:.1f} ms",
            )
        )
        out.append(
            Row(
                section,
                "eksops closed loop",
                f"{_fmt_rate(e2e['rate'])}, p50 {e2e['p50_ms']:.1f} / p95 {e2e['p95_ms']:.1f}"
                f" / p99 {e2e['p99_ms']:.1f} ms" + _errors(e2e),
            )
        )
        drain = block["drain"]
        out.append(
            Row(section, "eksops drain", f"{_fmt_rate(drain['rate'])} ({drain['tasks']:,} tasks)")
        )
        target = concurrency == "8"
        out.append(
            Row(
                section,
                "eksops / direct (drain; closed loop)",
                f"{block['ratio_drain']:.2f}; {block['ratio_closed_loop']:.2f}",
                _verdict(block["ratio_drain"] >= 0.85, ">= 0.85") if target else "",
            )
        )
        added = block["added_ms"]
        out.append(
            Row(
                section,
                "added latency p50 / p95 / p99",
                f"{added['p50']:.1f} / {added['p95']:.1f} / {added['p99']:.1f} ms",
                _verdict(added["p50"] <= 5.0, "p50 <= 5 ms") if target else "",
            )
        )
        for level in ("p50", "p95"):
            stages = block.get(f"stages_{level}_ms", {})
            out.append(
                Row(
                    section,
                    f"eksops {level} by stage",
                    " | ".join(f"{name} {value:.1f}" for name, value in stages.items()) + " ms",
                )
            )
        for kind in ("direct", "e2e", "drain"):
            cpu = block["cpu"][kind]
            out.append(
                Row(
                    section,
                    f"CPU ms per task, {kind}",
                    f"{_cpu_text(cpu['per_task_ms'])}; busy {cpu['busy_cores']:.2f} cores "
                    f"(machine {cpu['machine_busy_cores']:.2f} of {_cpus(results)})",
                )
            )
        for kind, profile in (block.get("profile") or {}).items():
            out.append(
                Row(
                    section,
                    f"worker GIL held (py-spy), {kind}",
                    f"{profile['gil_busy']:.0%} of wall time, "
                    f"{profile['gil_ms_per_task']:.2f} ms per task",
                )
            )
            steps = sorted(profile["by_step"].items(), key=lambda item: -item[1])
            out.append(
                Row(
                    section,
                    f"worker GIL time by step, {kind}",
                    "; ".join(f"{name} {share:.0f}%" for name, share in steps),
                )
            )
    accept = results.get("accept")
    if accept:
        out.append(
            Row(
                "Accept",
                f"submit_many of {accept['accepted']:,} create-jobs, durable",
                f"{_fmt_rate(accept['rate'])} in {accept['seconds']:.2f}s"
                f" (AOF confirmed: {accept['fsync_confirmed']})",
                _verdict(accept["rate"] >= 10_000, ">= 10,000/s"),
            )
        )
        out.append(
            Row(
                "Accept",
                f"raw pipelined LPUSH, same {accept['message_bytes']:,}-byte messages",
                f"{_fmt_rate(accept['raw_rate'])} ({_fmt_rate(accept['raw_durable_rate'])} "
                "with WAITAOF)",
            )
        )
        out.append(
            Row(
                "Accept",
                "raw LPUSH of 500 messages per command",
                _fmt_rate(accept["raw_variadic_rate"]),
            )
        )
        out.append(Row("Accept", "accept / raw pipelined", f"{accept['ratio']:.3f}"))
        out.append(
            Row(
                "Accept",
                "CPU us per accepted item",
                ", ".join(f"{k} {v:.0f}" for k, v in accept["cpu_us_per_item"].items()),
            )
        )
    task_events = results.get("events")
    if task_events:
        out.append(
            Row(
                "Task events",
                f"CPU us per chunk item for its 3 events ({task_events['requests']:,} items)",
                ", ".join(f"{k} {v:.0f}" for k, v in task_events["cpu_us_per_request"].items()),
            )
        )
        out.append(
            Row(
                "Task events",
                "events delivered to a receiver / sent",
                f"{task_events['events_received']:,} / {task_events['events_expected']:,}",
                _verdict(
                    task_events["events_received"] == task_events["events_expected"],
                    "all delivered",
                ),
            )
        )
    burst = results.get("burst")
    if burst:
        out.append(
            Row(
                "Burst",
                f"{burst['accepted']:,} create-jobs, {burst['workers']} workers x"
                f"{burst['worker_concurrency']}",
                f"limit {burst['rate_limit']:.0f} req/s, bucket {burst['burst']}, "
                f"max in flight {burst['max_in_flight']}",
            )
        )
        out.append(
            Row(
                "Burst",
                "drain time (bucket floor)",
                f"{burst['drain_seconds']:.1f}s ({burst['floor_seconds']:.1f}s)",
            )
        )
        out.append(
            Row(
                "Burst",
                "API creates: rate, busiest second, 429s",
                f"{burst['api_rate']:.0f}/s, {burst['peak_one_second']}, {burst['throttled']}",
                # The limiter grants at most bucket + rate x time; kubesim counts
                # completions, which bunch by up to a latency, so allow 0.1 s of rate.
                _verdict(
                    burst["throttled"] == 0
                    and burst["jobs_found"]
                    <= burst["burst"] + burst["rate_limit"] * (burst["drain_seconds"] + 0.1),
                    "no 429; creates <= bucket + rate x drain time",
                ),
            )
        )
        out.append(
            Row(
                "Burst",
                "lost / duplicates / stray (kubesim Jobs)",
                f"{burst['lost']} / {burst['duplicates']} / {burst['stray']}"
                f" ({burst['jobs_found']:,} Jobs; {burst['succeeded']:,} succeeded,"
                f" {burst['failed']} failed)",
                _verdict(burst["lost"] == 0 and burst["duplicates"] == 0, "0 and 0"),
            )
        )
    memory = results.get("memory")
    if memory:
        marks = memory["marks_mib"]
        out.append(
            Row(
                "Costs",
                f"worker RSS after {' / '.join(f'{int(m):,}' for m in marks)} tasks",
                " / ".join(f"{value:.1f}" for value in marks.values())
                + f" MiB ({memory['growth']:+.1%}; {memory['rate']:.0f} tasks/s)",
                _verdict(memory["growth"] <= 0.10, "growth <= 10%"),
            )
        )
    out += _tracking_rows(results.get("tracking"))
    out += _flow_rows(results.get("flow"))
    presigns = results.get("presigns")
    if presigns:
        minutes = presigns["run_seconds"] / 60
        out.append(
            Row(
                "Costs",
                "IAM token presigns (kubesim: distinct tokens)",
                f"{presigns['tokens_verified']} for {presigns['processes']} clients "
                f"({presigns.get('worker_processes', '?')} worker processes + harness) "
                f"in {minutes:.1f} min",
                _verdict(
                    presigns["tokens_verified"] <= presigns["processes"] * max(1, minutes / 10),
                    "<= 1 per process per 10 min",
                ),
            )
        )
    polls = results.get("polls")
    if polls:
        out.append(
            Row(
                "Costs",
                f"{polls['polls']:,} status polls of a finished request",
                f"{polls['api_calls_during']} API calls; {polls['per_poll_ms']:.2f} ms per poll",
                _verdict(polls["api_calls_during"] == 0, "0 API calls"),
            )
        )
    return out


def _flow_rows(block: dict[str, Any] | None) -> list[Row]:
    if not block:
        return []
    direct, alone, during = block["direct_ms"], block["eksops_ms"], block["during_burst_ms"]
    late = block["late_batch_first_start_s"]
    return [
        Row(
            "Flow control",
            "one create-job at a time, unloaded: direct / eksops p50 (p95)",
            f"{direct['p50']:.1f} ({direct['p95']:.1f}) / {alone['p50']:.1f} "
            f"({alone['p95']:.1f}) ms; added p50 {block['added_p50_ms']:.1f} ms",
            _verdict(block["added_p50_ms"] <= 3.0, "added p50 <= 3 ms"),
        ),
        Row(
            "Flow control",
            "unloaded single, eksops p50 by stage",
            " | ".join(
                f"{name} {value:.1f}" for name, value in block["eksops_stages_p50_ms"].items()
            )
            + " ms",
        ),
        Row(
            "Flow control",
            f"a single during a {block['burst_items']:,}-job batch: p50 / p95 / max "
            f"({int(during['n'])} singles)",
            f"{during['p50']:.1f} / {during['p95']:.1f} / {during['max']:.1f} ms",
            _verdict(
                during["p95"] <= block["interactive_bound_ms"],
                f"p95 <= 2 x unloaded + 1 slot = {block['interactive_bound_ms']:.0f} ms",
            ),
        ),
        Row(
            "Flow control",
            "a single during the batch, p50 by stage",
            " | ".join(
                f"{name} {value:.1f}"
                for name, value in block.get("during_burst_stages_p50_ms", {}).items()
            )
            + " ms",
        ),
        Row(
            "Flow control",
            "a 50-job batch behind it: submit -> its first request started",
            f"{late:.2f}s ({block['large_batch_succeeded_when_late_started']:,} of the large "
            "batch done by then)",
            _verdict(late <= 5.0, "within seconds"),
        ),
        Row(
            "Flow control",
            f"cancel of the {block['burst_items']:,}-job batch part-way",
            f"call {block['cancel_call_s'] * 1000:.0f} ms, settled in "
            f"{block['cancel_settled_s']:.2f}s; {block['cancelled']:,} cancelled, "
            f"{block['running_at_cancel']} running, {block['ended_at_cancel']:,} ended; "
            f"Jobs created after the cancel {block['created_after_cancel']}",
            _verdict(block["created_after_cancel"] == 0, "0 created after"),
        ),
    ]


def _tracking_rows(block: dict[str, Any] | None) -> list[Row]:
    if not block:
        return []
    woken, written = block["lag_woken_ms"], block["lag_written_ms"]
    marks = block["rss_mib"]
    calls = ", ".join(f"{name} {count}" for name, count in sorted(block["api_calls"].items()))
    return [
        Row(
            "Job tracker",
            f"{block['jobs']:,} Jobs created in {block['create_seconds']:.1f}s",
            f"ended within {block['end_window_seconds']:.1f}s; "
            f"{block['missing']} not seen by both ends",
        ),
        Row(
            "Job tracker",
            "API calls per tracked Job",
            f"{block['api_calls_per_job']:.4f} ({calls or 'none'})",
            _verdict(block["api_calls_per_job"] <= 0.01, "<= 0.01"),
        ),
        Row(
            "Job tracker",
            f"API calls per tracked Job, all {block['jobs_all']:,} Jobs of the phase",
            f"{block['api_calls_per_job_all']:.5f} ("
            + (", ".join(f"{k} {v}" for k, v in sorted(block["api_calls_all"].items())) or "none")
            + ")",
        ),
        Row(
            "Job tracker",
            "end visible -> waiter woken p50 / p99 / max",
            f"{woken['p50']:.0f} / {woken['p99']:.0f} / {woken['max']:.0f} ms "
            f"(record written p50 {written['p50']:.0f}, p99 {written['p99']:.0f} ms)",
            _verdict(woken["p50"] <= 100 and woken["p99"] <= 1000, "p50 <= 100 ms, p99 <= 1 s"),
        ),
        Row(
            "Job tracker",
            f"tracker RSS at {' / '.join(f'{int(m):,}' for m in marks)} Jobs",
            " / ".join(f"{value:.1f}" for value in marks.values())
            + f" MiB ({block['rss_growth']:+.1%})",
            _verdict(abs(block["rss_growth"]) <= 0.10, "flat, +-10%"),
        ),
        Row(
            "Job tracker",
            "Redis bytes per job record; per event",
            f"{block['record_bytes']:,.0f}; {block['event_bytes']:,.0f}",
        ),
    ]


def _cpu_text(per_task: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in per_task.items())


def _cpus(results: dict[str, Any]) -> int:
    return int(results.get("meta", {}).get("cpus", 0))


def _errors(loop: dict[str, Any]) -> str:
    return f" ({loop['error_count']} errors)" if loop["error_count"] else ""


def last_line(results: dict[str, Any]) -> str:
    """Return the machine-readable summary line (c = the first concurrency)."""
    throughput = results.get("throughput", {})
    first = throughput[next(iter(throughput))] if throughput else {}
    accept = results.get("accept", {})
    burst = results.get("burst", {})
    return (
        f"bench: e2e/direct={first.get('ratio_drain', 0.0):.2f} "
        f"accept/s={accept.get('rate', 0.0):.0f} "
        f"accept/raw={accept.get('ratio', 0.0):.3f} "
        f"burst_lost={burst.get('lost', -1)} burst_duplicates={burst.get('duplicates', -1)} "
        f"p50_added_ms={first.get('added_ms', {}).get('p50', 0.0):.1f}"
    )


def metadata(plan_name: str) -> dict[str, Any]:
    """Return what identifies the run: when, which code, which machine."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return ""

    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    return {
        "mode": plan_name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git(
            "status", "--porcelain", "--", "worker", "producer", "celeryconfig.py"
        ).splitlines(),
        "python": platform.python_version(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "load_average": load,
    }


def render(results: dict[str, Any], console: Console) -> None:
    """Print the table and the definitions."""
    table = Table(title=f"eksops benchmark ({results['meta']['mode']})", show_lines=False)
    table.add_column("section", style="bold")
    table.add_column("metric")
    table.add_column("value", style="cyan")
    table.add_column("target")
    previous = ""
    for row in rows(results):
        section = row.section if row.section != previous else ""
        table.add_row(section, row.metric, row.value, row.target)
        previous = row.section
    console.print(table)
    for note in results.get("notes", []):
        console.print(f"note: {note}")


def markdown(results: dict[str, Any]) -> str:
    """Return the report as Markdown (the table, definitions and run metadata)."""
    meta = results["meta"]
    dirty = meta["uncommitted"]
    lines = [
        f"# eksops benchmark, {meta['mode']} run started {meta['started_at']}",
        "",
        f"Commit `{meta['commit']}`"
        + (f" with uncommitted changes in {len(dirty)} files" if dirty else "")
        + f"; Python {meta['python']}; {meta['cpus']} CPUs; load average before the run "
        f"{' '.join(meta['load_average'])}; wall time {results.get('wall_seconds', 0):.0f}s.",
        "",
        "| section | metric | value | target |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.section} | {r.metric} | {r.value} | {r.target} |" for r in rows(results)]
    lines += ["", "Definitions:", ""]
    lines += [f"* **{name}**: {text}" for name, text in DEFINITIONS.items()]
    lines += [f"* note: {note}" for note in results.get("notes", [])]
    lines += ["", "```", last_line(results), "```", ""]
    return "\n".join(lines)


def write(results: dict[str, Any], directory: Path = RESULTS) -> tuple[Path, Path]:
    """Write ``<timestamp>.json`` and ``<timestamp>.md``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = directory / f"{stamp}.json"
    md_path = directory / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
