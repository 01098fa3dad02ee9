"""Start and stop the HTTPS server on an event loop: shared by CLI and Simulator.

Binding the socket ourselves (rather than through ``TCPSite``) gives the real port
for ``--port 0`` without reaching into aiohttp internals; the endpoint URL is known
only after that, so it is handed to the state before the first request is served.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from aiohttp import web

from kubesim import envfile, tls
from kubesim.config import ClusterIdentity, SimConfig
from kubesim.server import build_app
from kubesim.state import SimState

log = logging.getLogger(__name__)


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
        self.url = ""

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
        except OSError:
            sock.close()
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
        log.info("kubesim serving cluster %s at %s", self.identity.name, self.url)
        return self.url

    async def stop(self) -> None:
        self.state.cluster.close()
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
