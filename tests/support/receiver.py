"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records each POST.

Its behaviour is set per test: answer 2xx, answer 500 for the first N deliveries, stall
longer than the sender waits, or be down altogether (``stop``; the port stays unused).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int  # the status sent (0: the sender had gone); a sender gone may read 2xx too
    arrived: float  # time.monotonic() when the POST arrived

    @property
    def payload(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


@dataclass
class Behaviour:
    """What the receiver does with the next POSTs."""

    fail_first: int = 0  # answer 500 to this many POSTs first
    delay_seconds: float = 0.0  # wait this long before answering


@dataclass
class Receiver:
    """The server and what it received, in order."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = 0
        self._in_flight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.monotonic()
                with receiver._lock:
                    receiver._seen += 1
                    receiver._in_flight += 1
                    failing = receiver._seen <= receiver.behaviour.fail_first
                    delay = receiver.behaviour.delay_seconds
                time.sleep(delay)
                status = 500 if failing else 204
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    status = 0
                with receiver._lock:
                    receiver._in_flight -= 1
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, status, arrived)
                    )

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str | None = None) -> list[Received]:
        """The POSTs answered 2xx (to ``path``, if given)."""
        with self._lock:
            return [
                r
                for r in self.received
                if 200 <= r.answered < 300 and (path is None or r.path == path)
            ]

    def posts(self, path: str | None = None) -> list[Received]:
        """Every POST that arrived (to ``path``, if given), however it was answered."""
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def pending(self) -> int:
        """How many POSTs have arrived and are not answered yet."""
        with self._lock:
            return self._in_flight

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
