"""``python -m kubesim.loadtest``: measure authenticated requests per second.

Starts ``python -m kubesim`` in a subprocess (so client and server do not share a
GIL), mints one bearer token, and has ``--concurrency`` keep-alive HTTPS
connections read a namespace (``--mode read``) or create Jobs with generated
names (``--mode create``) for ``--duration`` seconds (bounded, loopback only).
``--mode watch`` creates ``--jobs`` Jobs (default 10,000) while ``--watchers``
watches (default 5) stream them, and reports creates/s and the delivery latency
of each ADDED event (send time stamped in an annotation, bounded by 30 s of
draining). Prints one line: rate, request count, errors and latency percentiles,
and the CPU seconds the client and (when started here, ``--job-duration`` passed
on) the server used while measuring - on a shared machine the client's own CPU
bounds what the server can be shown to do. Pass ``--env-file`` of an already
running kubesim to measure that one instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

from kubesim.clients import mint_token

log = logging.getLogger("kubesim.loadtest")
_MAX_REQUESTS = 2_000_000
_STAMP = "loadtest.kubesim.eksops.io/sent"
_TLS_CLOSE = 0.25
"""Seconds for closed TLS connections to finish their shutdown before the loop ends."""


def _read_env(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


class CpuClock:
    """CPU seconds (user + system) of this process and, when known, of the server."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._start = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime, _process_cpu(self.server_pid)

    def start(self) -> None:
        self._start = self._now()

    def text(self, count: int) -> str:
        client, server = (b - a for a, b in zip(self._start, self._now(), strict=True))
        out = f"client CPU {client:.1f}s ({client / max(count, 1) * 1000:.2f} ms each)"
        if self.server_pid is not None and server > 0:
            out += f", server CPU {server:.1f}s ({server / max(count, 1) * 1000:.2f} ms each)"
        return out


def _process_cpu(pid: int | None) -> float:
    """user + system CPU seconds of ``pid`` from /proc (0 where there is none)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _kubesim_process(
    workdir: Path, job_duration: float | None
) -> Iterator[tuple[dict[str, str], int]]:
    env_file = workdir / "kubesim.env"
    command = [sys.executable, "-m", "kubesim", "--port", "0", "--cluster", "loadtest"]
    command += ["--env-file", str(env_file), "--log-level", "WARNING"]
    if job_duration is not None:
        command += ["--job-duration", str(job_duration)]
    process = subprocess.Popen(command)  # noqa: S603 - our own module, fixed arguments
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kubesim did not start")
            time.sleep(0.05)
        yield _read_env(env_file), process.pid
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


_JSON_HEADERS = {"Content-Type": "application/json"}
_JOB_BODY = orjson.dumps(_JOB)


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
        request = (
            session.post(url, data=_JOB_BODY, headers=_JSON_HEADERS) if create else session.get(url)
        )
        async with request as response:
            await response.read()
            if response.status not in (200, 201):
                errors.append(response.status)
        latencies.append(time.monotonic() - started)


async def _measure(
    env: dict[str, str], duration: float, concurrency: int, mode: str, clock: CpuClock
) -> str:
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
        clock.start()
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
        cpu = clock.text(len(latencies))
    await asyncio.sleep(_TLS_CLOSE)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return (
        f"{len(latencies) / elapsed:.0f} req/s ({len(latencies)} authenticated "
        f"{'Job creates' if create else 'GETs'} over TLS in "
        f"{elapsed:.1f}s, concurrency {concurrency}, errors {len(errors)}); latency p50 "
        f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms; {cpu}"
    )


_STAMP_KEY = b'"' + _STAMP.encode() + b'":"'


def _sent_at(line: bytes) -> float | None:
    """The send stamp of an ADDED event line, found without decoding the object."""
    start = line.find(_STAMP_KEY)
    if start < 0:
        return None
    start += len(_STAMP_KEY)
    return float(line[start : line.index(b'"', start)])


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
                sent = _sent_at(line)
                if sent is not None:
                    latencies.append(now - sent)
            if stop.is_set():
                return


async def _measure_watch(
    env: dict[str, str], jobs: int, watchers: int, concurrency: int, clock: CpuClock
) -> str:
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
            rv = orjson.loads(await listed.read())["metadata"]["resourceVersion"]
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
                stamp = {"annotations": {_STAMP: repr(time.time())}}
                body = orjson.dumps({**_JOB, "metadata": {"generateName": "load-", **stamp}})
                async with session.post(jobs_url, data=body, headers=_JSON_HEADERS) as response:
                    await response.read()
                    if response.status != 201:
                        errors.append(response.status)

        clock.start()
        started = time.monotonic()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 30
        while any(len(d) < jobs for d in delivered) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cpu = clock.text(jobs)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(_TLS_CLOSE)
    latencies = sorted(x for d in delivered for x in d)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return (
        f"{jobs / elapsed:.0f} Job creates/s with {watchers} watchers ({jobs} jobs in "
        f"{elapsed:.1f}s, concurrency {concurrency}, errors {len(errors)}); "
        f"{len(latencies)} of {jobs * watchers} ADDED events delivered; delivery latency p50 "
        f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max "
        f"{(latencies[-1] if latencies else 0) * 1000:.1f} ms; {cpu}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesim.loadtest", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to measure (max 60)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mode", choices=("read", "create", "watch"), default="read")
    parser.add_argument("--jobs", type=int, default=10_000, help="watch mode: Jobs to create")
    parser.add_argument("--watchers", type=int, default=5, help="watch mode: watch streams")
    parser.add_argument("--env-file", type=Path, help="measure an already running kubesim")
    parser.add_argument(
        "--job-duration",
        type=float,
        metavar="SECONDS",
        help="--job-duration of the kubesim started here (3600: idle Jobs, as benchmarks use)",
    )
    args = parser.parse_args(argv)
    duration = min(args.duration, 60.0)
    jobs = min(args.jobs, 100_000)

    def run(env: dict[str, str], server_pid: int | None) -> str:
        clock = CpuClock(server_pid)
        if args.mode == "watch":
            return asyncio.run(_measure_watch(env, jobs, args.watchers, args.concurrency, clock))
        return asyncio.run(_measure(env, duration, args.concurrency, args.mode, clock))

    if args.env_file:
        result = run(_read_env(args.env_file), None)
    else:
        with (
            tempfile.TemporaryDirectory() as workdir,
            _kubesim_process(Path(workdir), args.job_duration) as (env, pid),
        ):
            result = run(env, pid)
    print(result)  # noqa: T201 - the CLI's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
