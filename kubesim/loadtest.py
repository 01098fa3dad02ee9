"""``python -m kubesim.loadtest``: measure authenticated requests per second.

Starts ``python -m kubesim`` in a subprocess (so client and server do not share a
GIL), mints one bearer token, and has ``--concurrency`` keep-alive HTTPS
connections read a namespace (``--mode read``) or create Jobs with generated
names (``--mode create``) for ``--duration`` seconds (bounded, loopback only).
``--mode watch`` creates ``--jobs`` Jobs (default 10,000) while ``--watchers``
watches (default 5) stream them, and reports creates/s and the delivery latency
of each ADDED event (send time stamped in an annotation, bounded by 30 s of
draining). Prints one line: rate, request count, errors and latency percentiles. Pass
``--env-file`` of an already running kubesim to measure that one instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from kubesim.clients import mint_token

log = logging.getLogger("kubesim.loadtest")
_MAX_REQUESTS = 2_000_000
_STAMP = "loadtest.kubesim.eksops.io/sent"


def _read_env(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@contextlib.contextmanager
def _kubesim_process(workdir: Path) -> Iterator[dict[str, str]]:
    env_file = workdir / "kubesim.env"
    command = [sys.executable, "-m", "kubesim", "--port", "0", "--cluster", "loadtest"]
    command += ["--env-file", str(env_file), "--log-level", "WARNING"]
    process = subprocess.Popen(command)  # noqa: S603 - our own module, fixed arguments
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kubesim did not start")
            time.sleep(0.05)
        yield _read_env(env_file)
    finally:
        process.terminate()
        process.wait(timeout=30)


_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"generateName": "load-"},
    "spec": {
        "template": {
            "spec": {
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                "restartPolicy": "Never",
            }
        }
    },
}


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    *,
    create: bool,
    stop_at: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    while time.monotonic() < stop_at and len(latencies) < _MAX_REQUESTS:
        started = time.monotonic()
        request = session.post(url, json=_JOB) if create else session.get(url)
        async with request as response:
            await response.read()
            if response.status not in (200, 201):
                errors.append(response.status)
        latencies.append(time.monotonic() - started)


async def _measure(env: dict[str, str], duration: float, concurrency: int, mode: str) -> str:
    token = mint_token(env["EKS_CLUSTER_NAME"], region=env["EKS_REGION"])
    context = ssl.create_default_context(cafile=env["AWS_CA_BUNDLE"])
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    base = env["AWS_ENDPOINT_URL_EKS"]
    create = mode == "create"
    url = base + (
        "/apis/batch/v1/namespaces/default/jobs" if create else "/api/v1/namespaces/default"
    )
    latencies: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.get(base + "/api/v1/namespaces/default") as warmup:
            warmup.raise_for_status()
        started = time.monotonic()
        stop_at = started + duration
        workers = [
            _worker(
                session, url, create=create, stop_at=stop_at, latencies=latencies, errors=errors
            )
            for _ in range(concurrency)
        ]
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return (
        f"{len(latencies) / elapsed:.0f} req/s ({len(latencies)} authenticated "
        f"{'Job creates' if create else 'GETs'} over TLS in "
        f"{elapsed:.1f}s, concurrency {concurrency}, errors {len(errors)}); latency p50 "
        f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"
    )


async def _watcher(
    session: aiohttp.ClientSession, url: str, latencies: list[float], stop: asyncio.Event
) -> None:
    """Stream job events; for each ADDED, record receive time minus the send stamp."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        buffer = b""
        async for chunk in response.content.iter_any():
            now = time.time()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.startswith(b'{"type":"ADDED"'):
                    continue
                event = json.loads(line)
                sent = (event["object"]["metadata"].get("annotations") or {}).get(_STAMP)
                if sent:
                    latencies.append(now - float(sent))
            if stop.is_set():
                return


async def _measure_watch(env: dict[str, str], jobs: int, watchers: int, concurrency: int) -> str:
    """Create ``jobs`` Jobs while ``watchers`` watches stream them; fan-out latency."""
    token = mint_token(env["EKS_CLUSTER_NAME"], region=env["EKS_REGION"])
    context = ssl.create_default_context(cafile=env["AWS_CA_BUNDLE"])
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    base = env["AWS_ENDPOINT_URL_EKS"]
    namespace = f"watch-{int(time.time())}"
    connector = aiohttp.TCPConnector(limit=concurrency + watchers + 2, ssl=context)
    delivered: list[list[float]] = [[] for _ in range(watchers)]
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        body = {"metadata": {"name": namespace}}
        async with session.post(base + "/api/v1/namespaces", json=body) as created:
            created.raise_for_status()
        jobs_url = f"{base}/apis/batch/v1/namespaces/{namespace}/jobs"
        async with session.get(jobs_url) as listed:
            rv = (await listed.json())["metadata"]["resourceVersion"]
        tasks = [
            asyncio.create_task(
                _watcher(session, f"{jobs_url}?watch=true&resourceVersion={rv}", delivered[i], stop)
            )
            for i in range(watchers)
        ]
        await asyncio.sleep(0.2)
        remaining = [jobs]
        errors: list[int] = []

        async def creator() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                job = json.loads(json.dumps(_JOB))
                job["metadata"]["annotations"] = {_STAMP: repr(time.time())}
                async with session.post(jobs_url, json=job) as response:
                    await response.read()
                    if response.status != 201:
                        errors.append(response.status)

        started = time.monotonic()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 30
        while any(len(d) < jobs for d in delivered) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for d in delivered for x in d)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return (
        f"{jobs / elapsed:.0f} Job creates/s with {watchers} watchers ({jobs} jobs in "
        f"{elapsed:.1f}s, concurrency {concurrency}, errors {len(errors)}); "
        f"{len(latencies)} of {jobs * watchers} ADDED events delivered; delivery latency p50 "
        f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max "
        f"{(latencies[-1] if latencies else 0) * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesim.loadtest", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to measure (max 60)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mode", choices=("read", "create", "watch"), default="read")
    parser.add_argument("--jobs", type=int, default=10_000, help="watch mode: Jobs to create")
    parser.add_argument("--watchers", type=int, default=5, help="watch mode: watch streams")
    parser.add_argument("--env-file", type=Path, help="measure an already running kubesim")
    args = parser.parse_args(argv)
    duration = min(args.duration, 60.0)
    jobs = min(args.jobs, 100_000)

    def run(env: dict[str, str]) -> str:
        if args.mode == "watch":
            return asyncio.run(_measure_watch(env, jobs, args.watchers, args.concurrency))
        return asyncio.run(_measure(env, duration, args.concurrency, args.mode))

    if args.env_file:
        result = run(_read_env(args.env_file))
    else:
        with tempfile.TemporaryDirectory() as workdir, _kubesim_process(Path(workdir)) as env:
            result = run(env)
    print(result)  # noqa: T201 - the CLI's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
