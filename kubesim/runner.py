"""Start and stop the HTTPS server on an event loop: shared by CLI and Simulator.

Binding the socket ourselves (rather than through ``TCPSite``) gives the real port
for ``--port 0`` without reaching into aiohttp internals; the endpoint URL is known
only after that, so it is handed to the state before the first request is served.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from pathlib import Path

from aiohttp import web

from kubesim import envfile, persistence, tls
from kubesim.cluster import Cluster
from kubesim.config import ClusterIdentity, SimConfig
from kubesim.server import build_app
from kubesim.state import SimState

log = logging.getLogger(__name__)
SAVE_INTERVAL = 2.0
"""Seconds between saves of a changed cluster to ``--state-dir``."""


def format_url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class Server:
    """One kubesim instance bound to a loopback port."""

    def __init__(
        self, identity: ClusterIdentity, config: SimConfig, state_dir: Path | None = None
    ) -> None:
        self.identity = identity
        self.state = SimState(identity, config)
        self.tls = tls.create_tls(state_dir)
        self._runner: web.AppRunner | None = None
        self._state_dir = state_dir
        self._autosave: asyncio.Task[None] | None = None
        self.url = ""
        if state_dir is not None and (state_dir / persistence.FILE).exists():
            restored = Cluster(identity, config, self.state.timers, seed=False)
            if persistence.restore(restored, state_dir):
                self.state.cluster.close()
                self.state.cluster = restored

    @property
    def env(self) -> dict[str, str]:
        return envfile.client_env(self.url, self.identity, self.tls.ca_pem_path)

    async def start(self, host: str, port: int) -> str:
        """Bind, start serving and return the base URL."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"port {port} on {host} is already in use") from None
            raise
        self.url = format_url(host, sock.getsockname()[1])
        self.state.endpoint = self.url
        app = build_app(self.state, self.tls.ca_pem)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(
            self._runner, sock, ssl_context=self.tls.ssl_context, backlog=1024
        ).start()
        self.state.timers.attach(asyncio.get_running_loop())
        if self._state_dir is not None:
            state_dir = self._state_dir
            self._autosave = asyncio.create_task(
                persistence.autosave(lambda: self.state.cluster, state_dir, SAVE_INTERVAL)
            )
        log.info("kubesim serving cluster %s at %s", self.identity.name, self.url)
        return self.url

    async def stop(self) -> None:
        self.state.cluster.close()
        if self._autosave is not None:
            self._autosave.cancel()
            self._autosave = None
        if self._state_dir is not None:
            try:
                persistence.save(self.state.cluster, self._state_dir)
            except OSError as exc:
                log.error("could not save the cluster state: %s", exc)
        if self._runner is not None:
            # Idle keep-alive clients would never answer a TLS close_notify; abort
            # their connections so no transport outlives the loop.
            server = self._runner.server
            for handler in list(server.connections if server is not None else []):
                if handler.transport is not None:
                    handler.transport.abort()
            await self._runner.cleanup()
            self._runner = None
        tls.cleanup(self.tls)
