"""A real Flower process for integration tests: ``celery -A producer.flower flower``.

Started on a free loopback port against the test's Redis, with its HTTP API open
(``FLOWER_UNAUTHENTICATED_API``, loopback only) and, if asked, its persistent state
file, as the shipped compose file runs it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from devstack.services import free_port
from tests.support.processes import BIN, ROOT, base_env, terminate


class FlowerProcess:
    """One Flower subprocess and a client of its HTTP API."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, db: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = base_env({**env, "FLOWER_UNAUTHENTICATED_API": "true"})
        self.args = [
            str(BIN / "celery"), "-A", "producer.flower", "flower",
            "--address=127.0.0.1", f"--port={self.port}", "--max_tasks=10000",
        ]  # fmt: skip
        if db is not None:
            self.args += ["--persistent=True", f"--db={db}"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> FlowerProcess:
        """Start Flower and return once its HTTP API answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthcheck", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"flower not answering:\n{self.log_path.read_text()}")

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` of Flower's API and return its JSON."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def page(self, path: str) -> str:
        """GET a page of Flower's UI and return its HTML."""
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.text

    def stop(self) -> None:
        """SIGTERM: Flower saves its state (when persistent) and exits."""
        terminate(self.process)
