"""``eksops doctor`` (``python -m worker.doctor``): is this machine ready to run eksops?

Checks, in the order a request meets them, each a line ``PASS``/``FAIL`` with what was
seen and, for a failure, the fix: the settings; Redis (broker and result backend);
the cluster, step by step as a worker reaches it (``worker.operations.checks``: AWS
credentials, DescribeCluster, token, TLS, identity, RBAC for every verb eksops uses);
the fleet-wide limiter; the live workers, and what they reported about their own
cluster access. Run it where a worker runs: it uses this machine's credentials.
Exit code 0 when everything passed, 1 when something failed, 2 when the settings are
invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import redis
from celery import Celery

from worker import fleet
from worker.delivery.config import celery_settings
from worker.delivery.connections import redis_client
from worker.errors import ConfigurationInvalid
from worker.logs import configure_logging, safe_url
from worker.operations import Clusters
from worker.operations.checks import Check, cluster_checks
from worker.settings import QueueSettings, WorkerSettings
from worker.validation import validate_settings


def _redis(url: str, role: str, queue: QueueSettings) -> Check:
    client = redis_client(url, queue, socket_timeout=3, socket_connect_timeout=3)
    try:
        info = client.info("server")
    except (redis.RedisError, OSError) as exc:
        return Check(
            f"redis ({role})",
            False,
            f"{safe_url(url)} does not answer: {exc}",
            "start Redis, or point REDIS_URL at one that answers",
        )
    finally:
        client.close()
    server = info.get("server_name") or "redis"
    version = info.get("valkey_version") or info.get("redis_version", "?")
    return Check(f"redis ({role})", True, f"{safe_url(url)} answers ({server} {version})")


def _limiter(client: Any, cluster: str, settings: WorkerSettings) -> Check:
    state = fleet.read_limiter(client, cluster)
    limit = (
        f"limit {settings.k8s_rate_limit_qps:g}/s, burst {settings.k8s_rate_limit_burst}, "
        f"{settings.k8s_max_in_flight} in flight"
    )
    tokens = "full" if state.tokens is None else f"{state.tokens:g} tokens"
    detail = f"{limit}: {tokens}, {state.in_flight} in flight, {state.waiting} waiting"
    if state.paused_for_seconds:
        return Check(
            "limiter",
            False,
            f"{detail}; paused {state.paused_for_seconds:.1f}s more after a 429",
            "the cluster is throttling eksops: lower K8S_RATE_LIMIT_QPS, or wait",
        )
    return Check("limiter", True, detail)


def _workers(queue: QueueSettings, client: Any) -> list[Check]:
    app = Celery("eksops-doctor", set_as_current=False)
    app.conf.update(celery_settings(queue, role="producer"))
    try:
        replies = app.control.ping(timeout=2.0) or []
    except Exception as exc:
        return [Check("workers", False, f"could not ask: {exc}", "check Redis")]
    finally:
        app.close()
    checks = [
        Check(
            "workers",
            bool(replies),
            f"{len(replies)} answered a ping"
            + (
                f": {', '.join(sorted(name for reply in replies for name in reply))}"
                if replies
                else ""
            ),
            "" if replies else "start one: eksops worker (or make run)",
        )
    ]
    for reported in fleet.read_all(client):
        status = reported.status
        checks.append(
            Check(
                f"workers' view of {reported.cluster}",
                status == "pass",
                f"{status} at {reported.checked_at} by {reported.worker}"
                + (f"; failed: {', '.join(reported.failed)}" if reported.failed else ""),
                "" if status == "pass" else "run eksops doctor on that worker's host",
            )
        )
    return checks


def diagnose() -> list[Check]:
    """Run every check; the list ends early when the settings themselves are invalid."""
    try:
        queue = validate_settings(QueueSettings)
        queue.require_urls()
        settings = validate_settings(WorkerSettings)
    except ConfigurationInvalid as exc:
        return [Check("settings", False, exc.message, "set the variables named above")]
    results = [
        Check("settings", True, f"cluster access by {settings.mode}: {settings.cluster_label}")
    ]
    results.append(_redis(str(queue.broker_url), "broker", queue))
    if queue.result_backend != queue.broker_url:
        results.append(_redis(str(queue.result_backend), "results", queue))
    clusters = Clusters(settings, pool_size=2)
    target = clusters.target(None)
    results += cluster_checks(clusters, target, mode=settings.mode)
    if results[1].ok:
        client = redis_client(str(queue.broker_url), queue, socket_timeout=3)
        try:
            results.append(_limiter(client, target.key, settings))
            results += _workers(queue, client)
        finally:
            client.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the checks; return 0 if all passed, 1 if one failed, 2 for bad settings."""
    parser = argparse.ArgumentParser(prog="eksops doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args(argv)
    configure_logging("ERROR")
    results = diagnose()
    if options.json:
        sys.stdout.write(
            json.dumps(
                {"ok": all(r.ok for r in results), "checks": [r.as_dict() for r in results]},
                indent=2,
            )
            + "\n"
        )
    else:
        width = max(len(result.name) for result in results)
        for result in results:
            sys.stdout.write(
                f"{'PASS' if result.ok else 'FAIL'}  {result.name:<{width}}  {result.detail}\n"
            )
            if not result.ok and result.fix:
                sys.stdout.write(f"      {'':<{width}}  fix: {result.fix}\n")
    if results and results[0].name == "settings" and not results[0].ok:
        return 2
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
