"""Run kubesim inside a test process: a background thread with its own event loop.

Synchronous test code (pytest, the kubernetes client, boto3) cannot share an
event loop with the server, so the server gets a thread of its own; ``start()``
returns once the port is bound and serving, ``stop()`` shuts it down cleanly.

    with Simulator(cluster="demo") as sim:
        os.environ.update(sim.env)
        sim.admin.configure(job_duration=0.1)
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

from kubesim import envfile
from kubesim.adminclient import AdminClient
from kubesim.config import DEFAULT_CALLER_ARN, ClusterIdentity, SimConfig
from kubesim.runner import Server

_START_TIMEOUT = 30.0


class Simulator:
    """An in-process kubesim; usable as a context manager."""

    def __init__(
        self,
        *,
        cluster: str = "kubesim",
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | Path | None = None,
        job_duration: float = 2.0,
        default_outcome: str = "succeed",
        namespace_termination: float = 1.0,
        pod_termination: float = 0.3,
        latency_ms: float = 0.0,
        token_max_age: float = 900.0,
        caller_arn: str = DEFAULT_CALLER_ARN,
        kubernetes_version: str = "1.31",
        pod_startup: float = 1.0,
        event_ttl: float = 3600.0,
        event_limit: int = 20_000,
        watch_timeout: float = 1800.0,
        bookmark_interval: float = 60.0,
    ) -> None:
        config = SimConfig()
        config.update(
            {
                "pod_startup": pod_startup,
                "event_ttl": event_ttl,
                "event_limit": event_limit,
                "watch_timeout": watch_timeout,
                "bookmark_interval": bookmark_interval,
                "job_duration": job_duration,
                "default_outcome": default_outcome,
                "namespace_termination": namespace_termination,
                "pod_termination": pod_termination,
                "latency_ms": latency_ms,
                "token_max_age": token_max_age,
                "caller_arn": caller_arn,
            }
        )
        self.cluster, self.region = cluster, region
        self._identity = ClusterIdentity(cluster, region, kubernetes_version=kubernetes_version)
        self._config = config
        self._host, self._port = host, port
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._admin: AdminClient | None = None

    def start(self) -> Simulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        server = Server(self._identity, self._config, self._state_dir)

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start(self._host, self._port))
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"kubesim-{self.cluster}", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("kubesim did not start in time")
        if failure:
            self._thread = None
            raise failure[0]
        self._server, self._loop = server, loop
        self._admin = AdminClient(server.url, server.tls.ca_pem_path)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_START_TIMEOUT)
        self._thread, self._loop, self._server, self._admin = None, None, None, None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> Server:
        if self._server is None:
            raise RuntimeError("simulator is not running")
        return self._server

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: EKS, Kubernetes and admin API alike."""
        return self._running().url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def ca_pem_path(self) -> Path:
        return self._running().tls.ca_pem_path

    @property
    def env(self) -> dict[str, str]:
        """The variables that point boto3 (and eksops) at this simulator."""
        return self._running().env

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            raise RuntimeError("simulator is not running")
        return self._admin

    def write_env_file(self, path: str | Path) -> Path:
        target = Path(path)
        envfile.write(target, self.env)
        return target
