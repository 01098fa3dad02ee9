"""``eksops queue``: the backlog, the workers, each cluster's limiter and job tracker.

The same reading as ``/health``'s ``queues`` and ``trackers`` sections
(``worker.queues``, ``producer.jobs``), straight from Redis: per lane, messages waiting,
the oldest one's age and messages held by workers; live workers; per cluster, the
limiter's tokens, calls in flight, callers waiting and a pause after a 429; per
tracker, its holder, state and lag (seconds since it was last heard from).
"""

from __future__ import annotations

from typing import Any

import click
from redis.exceptions import RedisError
from rich.table import Table

from producer import jobs
from producer.cli.common import client, fail, json_option, out
from worker import queues
from worker.errors import QueueUnavailable


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def read_report(redis: Any) -> dict[str, Any]:
    """Return the backlog and the trackers as one JSON-ready object."""
    report = queues.read(redis).as_dict()
    report["trackers"] = [
        {
            "cluster": tracker.cluster,
            "current": tracker.current,
            "state": tracker.state,
            "holder": tracker.holder,
            "lag_seconds": tracker.age_seconds,
        }
        for tracker in jobs.trackers(redis)
    ]
    return report


def _print(report: dict[str, Any]) -> None:
    lanes = Table(title="Lanes", title_justify="left")
    for column in ("lane", "waiting", "oldest age", "held", "groups"):
        lanes.add_column(column, justify="left" if column == "lane" else "right")
    for lane in report["lanes"]:
        groups = lane["groups"]
        lanes.add_row(
            lane["lane"],
            str(lane["waiting"]),
            _seconds(lane["oldest_age_seconds"]),
            str(lane["held"]),
            "-" if groups is None else str(groups),
        )
    out.print(lanes)
    out.print(
        f"Live workers: {report['live_workers']}    "
        f"oldest held message: {_seconds(report['oldest_held_seconds'])}"
    )
    if report["clusters"]:
        limiters = Table(title="API limiters", title_justify="left")
        for column in ("cluster", "tokens", "in flight", "waiting", "paused for"):
            limiters.add_column(column)
        for limiter in report["clusters"]:
            tokens = limiter["tokens"]
            limiters.add_row(
                limiter["cluster"],
                "-" if tokens is None else f"{tokens:g}",
                str(limiter["in_flight"]),
                str(limiter["waiting"]),
                _seconds(limiter["paused_for_seconds"]),
            )
        out.print(limiters)
    if report["trackers"]:
        trackers = Table(title="Job trackers", title_justify="left")
        for column in ("cluster", "state", "holder", "lag"):
            trackers.add_column(column)
        for tracker in report["trackers"]:
            trackers.add_row(
                str(tracker["cluster"]),
                tracker["state"],
                tracker["holder"] or "-",
                _seconds(tracker["lag_seconds"]),
            )
        out.print(trackers)


@click.command("queue")
@json_option()
def queue(as_json: bool) -> None:
    """Show the backlog per lane (waiting, oldest age, held), live workers, limiters, trackers."""
    eksops = client()
    try:
        report = read_report(eksops.redis)
    except (RedisError, OSError) as exc:
        fail(QueueUnavailable(f"Redis is unreachable while reading the queue: {exc}"))
    finally:
        eksops.close()
    if as_json:
        out.print_json(data=report)
    else:
        _print(report)
