"""What the local stack keeps between runs, and the lock that allows one run at a time.

A second ``make run`` beside a running one would start a second Valkey on the same
data directory and overwrite ``.run/stack.env``; the run directory is therefore locked
(``flock`` on ``.run/stack.lock``, released by the kernel when the process dies, so a
killed stack never leaves a stale lock) and the holder's pid and addresses are kept
next to it for the message the second run prints.

``.run/stack.json`` keeps the ports and the Flower password chosen by the first run,
so bookmarks, ``.run/stack.env``, the kubeconfig and the password stay valid across
restarts; the data behind them (Valkey's append-only file, kubesim's objects) is kept
under ``.run`` too. It is written with mode 0600: it holds a password.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.services import free_port


class StackRunning(RuntimeError):
    """Raised when another local stack holds the run directory."""


def port_free(port: int) -> bool:
    """Return whether nothing listens on ``port`` on loopback (and it can be bound)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class StackState:
    """The ports and credentials of the local stack, stable from one run to the next."""

    ports: dict[str, int] = field(default_factory=dict)
    flower_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @classmethod
    def load(cls, path: Path) -> StackState:
        """Return the state kept at ``path``, or a new one."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(ports=dict(data["ports"]), flower_password=str(data["flower_password"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        """Write the state (mode 0600, replaced atomically)."""
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(asdict(self), out, indent=2)
        temporary.replace(path)

    def port(
        self, name: str, *, preferred: int | None = None, default: int | None = None
    ) -> tuple[int, str | None]:
        """Return the port of service ``name``, and a note when it had to change.

        ``preferred`` (the command line's or the environment's) wins; then the port
        kept from the last run, if it is still free; then ``default`` if free; then
        any free port.
        """
        kept = self.ports.get(name)
        note = None
        if preferred is not None:
            chosen = preferred
        elif kept is not None and port_free(kept):
            chosen = kept
        elif default is not None and port_free(default):
            chosen = default
        else:
            chosen = free_port()
        if preferred is None and kept is not None and chosen != kept:
            note = (
                f"{name}: port {kept} of the last run is taken by another process; using {chosen}"
            )
        self.ports[name] = chosen
        return chosen, note


@dataclass
class RunLock:
    """The exclusive right to run a stack from one run directory."""

    run_dir: Path
    _handle: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.run_dir / "stack.lock"

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StackRunning` saying who holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StackRunning(holder) from None
        self._handle = handle

    def describe(self, text: str) -> None:
        """Record who holds the lock (shown to a second run)."""
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            started = time.strftime("%H:%M:%S")
            self._handle.write(f"pid {os.getpid()}, started {started}: {text}\n")
            self._handle.flush()

    def release(self) -> None:
        """Let the lock go (the kernel does too if the process dies)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()
            self._handle = None
