"""Real eksops processes for integration tests: celery workers and CLI runs.

A :class:`WorkerProcess` is ``celery -A worker worker`` exactly as operators start it,
configured only through environment variables, with its log captured to a file the
test can read (the log format is part of what the suites check).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
READY_LINE = "ready to accept tasks"


def terminate(process: subprocess.Popen[Any] | None) -> None:
    """SIGTERM ``process`` (if it still runs), give it 15 s, then SIGKILL it."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Return a minimal environment for an eksops process plus ``extra``."""
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


class WorkerProcess:
    """One ``celery -A worker worker`` subprocess."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        concurrency: int = 4,
        pool: str = "threads",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.env = base_env(env)
        self.log_path = log_path
        self.name = f"it-{uuid.uuid4().hex[:6]}@%h"
        self.args = [
            str(BIN / "celery"),
            "-A",
            "worker",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            self.name,
            "--without-mingle",
            "--without-gossip",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and return once it accepts tasks."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log(offset):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}:\n{self.log(offset)}"
                )
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log(offset)}")

    def log(self, offset: int = 0) -> str:
        """Return what the worker has logged (from byte ``offset``)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group (the main process and its pool)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM): finish running tasks, then exit."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL the worker and its pool, as a crashed host would."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    @property
    def alive(self) -> bool:
        """Return whether the worker process is still running."""
        return self.process is not None and self.process.poll() is None


@contextlib.contextmanager
def running_worker(
    env: Mapping[str, str], log_path: Path, **options: object
) -> Iterator[WorkerProcess]:
    """Run a worker for the duration of the block."""
    worker = WorkerProcess(env, log_path, **options)  # type: ignore[arg-type]
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``eksops`` CLI as a user would and return its outcome."""
    return subprocess.run(
        [str(BIN / "eksops"), *args],
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )
