"""The benchmark harness's own logic, without starting anything: no timing is asserted.

``make bench`` is the harness's real test; these check what a wrong figure could hide
in: percentiles, the closed loop's counting, the CPU/memory readers, the profile
categories and the machine-readable last line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bench import profiling, report
from bench.loop import closed_loop, percentile
from bench.procs import CpuMeter, cpu_seconds, rss_bytes


def test_percentile_takes_the_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) == 0.0


def test_closed_loop_counts_requests_and_reports_errors() -> None:
    calls: list[int] = []

    def request(index: int) -> None:
        calls.append(index)
        if calls.count(index) == 1:
            raise ValueError("the first call of each caller fails")

    result = closed_loop(request, concurrency=3, duration=0.2, warmup=0.05)
    assert result.completed > 0
    assert len(result.errors) == 3
    assert all(error.startswith("ValueError") for error in result.errors)
    assert set(calls) == {0, 1, 2}
    assert len(result.latencies_ms) == result.completed


def test_process_readers_see_this_process() -> None:
    assert rss_bytes(os.getpid()) > 0
    assert cpu_seconds(os.getpid()) >= 0
    use = CpuMeter({"me": os.getpid()}).start().stop()
    assert set(use.seconds) == {"me"}
    assert use.machine_seconds >= 0


def test_profile_charges_a_sample_to_the_first_matching_step(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "asynloop (celery/worker/loops.py:1);EventDispatcher.flush (celery/events/d.py:2);"
        "Redis.execute_command (redis/client.py:3) 3\n"
        "trace_task (celery/app/trace.py:1);ClusterClient.call (worker/operations/c.py:9);"
        "SSLSocket.read (ssl.py:1) 5\n"
        "trace_task (celery/app/trace.py:1);Message.ack (kombu/message.py:1) 2\n"
        "trace_task (celery/app/trace.py:1);run_chunk (worker/chunks.py:46);"
        "begin_many (worker/executions.py:98);Redis.execute_command (redis/client.py:3) 4\n"
        "HTTPConnection.getresponse (http/client.py:1);HTTPResponse.begin (http/client.py:2) 1\n"
    )
    profile = profiling.summarise(raw, seconds=1.0, rate=100)
    assert profile.samples == 15
    assert profile.gil_busy == 0.15
    assert profile.by_step == pytest.approx(
        {
            "task events (Flower): build + publish": 20.0,
            "ack: kombu QoS.ack (HDEL/ZREM)": 2 / 15 * 100,
            "Kubernetes call: client, urllib3, TLS, JSON": 5 / 15 * 100,
            # begin_many, not the chunk loop around it; http.client's begin is not ours
            "eksops start: lease, attempt, stored result": 4 / 15 * 100,
            "event loop and other": 1 / 15 * 100,
        }
    )
    assert profile.by_library["urllib3, http.client, ssl, socket"] == pytest.approx(6 / 15 * 100)


def _results() -> dict[str, object]:
    loop = {"rate": 100.0, "p50_ms": 25.0, "p95_ms": 30.0, "p99_ms": 40.0, "error_count": 0}
    cpu = {"per_task_ms": {"worker": 5.0}, "busy_cores": 1.0, "machine_busy_cores": 1.5}
    return {
        "meta": {
            "mode": "quick",
            "started_at": "now",
            "commit": "abc",
            "uncommitted": [],
            "python": "3.11",
            "cpus": 2,
            "load_average": ["0", "0", "0"],
        },
        "throughput": {
            "8": {
                "direct": loop,
                "e2e": {**loop, "rate": 80.0, "p50_ms": 28.5},
                "drain": {"tasks": 10, "seconds": 0.1, "rate": 90.0},
                "ratio_drain": 0.9,
                "ratio_closed_loop": 0.8,
                "added_ms": {"p50": 3.5, "p95": 4.0, "p99": 5.0},
                "stages_p50_ms": {"submit": 1.0},
                "cpu": {"direct": cpu, "e2e": cpu, "drain": cpu},
                "profile": None,
            }
        },
        "accept": {
            "items": 10,
            "accepted": 10,
            "message_bytes": 1000,
            "seconds": 0.001,
            "rate": 12_345.0,
            "fsync_confirmed": True,
            "raw_rate": 50_000.0,
            "raw_durable_rate": 20_000.0,
            "raw_variadic_rate": 100_000.0,
            "ratio": 0.24690,
            "cpu_us_per_item": {"producer": 80.0},
        },
        "burst": {
            "accepted": 10,
            "workers": 2,
            "worker_concurrency": 4,
            "rate_limit": 100.0,
            "burst": 100,
            "max_in_flight": 8,
            "drain_seconds": 1.0,
            "floor_seconds": 0.0,
            "api_rate": 10.0,
            "peak_one_second": 10,
            "throttled": 0,
            "lost": 0,
            "duplicates": 0,
            "stray": 0,
            "jobs_found": 10,
            "succeeded": 10,
            "failed": 0,
        },
        "tracking": {
            "jobs": 10,
            "create_seconds": 1.0,
            "end_window_seconds": 1.0,
            "missing": 0,
            "lag_woken_ms": {"p50": 5.0, "p99": 1200.0, "max": 1300.0},
            "lag_written_ms": {"p50": 2.0, "p99": 900.0, "max": 950.0},
            "api_calls": {"watch jobs": 1},
            "api_calls_per_job": 0.1,
            "api_calls_all": {"watch jobs": 1},
            "api_calls_per_job_all": 0.01,
            "jobs_all": 100,
            "rss_mib": {"10": 100.0, "100": 105.0},
            "rss_growth": 0.05,
            "record_bytes": 1400.0,
            "event_bytes": 170.0,
            "memory_seconds": 1.0,
        },
    }


def test_last_line_is_machine_readable() -> None:
    line = report.last_line(_results())
    assert line == (
        "bench: e2e/direct=0.90 accept/s=12345 accept/raw=0.247 burst_lost=0 "
        "burst_duplicates=0 p50_added_ms=3.5"
    )
    assert re.fullmatch(r"bench: (\S+=\S+ ?)+", line)


def test_report_marks_targets_and_ends_with_the_last_line() -> None:
    results = _results()
    rows = report.rows(results)
    targets = {row.metric: row.target for row in rows if row.target}
    assert targets["eksops / direct (drain; closed loop)"].startswith("met")
    assert targets["added latency p50 / p95 / p99"].startswith("met")
    assert targets[f"submit_many of {10:,} create-jobs, durable"].startswith("met")
    # The tracker's targets: 0.1 API calls per Job and a 1.2 s p99 miss; flat RSS meets.
    assert targets["API calls per tracked Job"].startswith("NOT met")
    assert targets["end visible -> waiter woken p50 / p99 / max"].startswith("NOT met")
    assert targets["tracker RSS at 10 / 100 Jobs"].startswith("met")
    assert report.markdown(results).rstrip().endswith(f"{report.last_line(results)}\n```")
