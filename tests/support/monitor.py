"""Every command a Redis server runs while a block runs, as ``MONITOR`` reports them."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def monitored(client: Any) -> Iterator[list[dict[str, Any]]]:
    """Yield the list the commands are appended to (redis-py's ``MONITOR`` entries:
    ``command``, ``client_address``, ``client_port``...); complete once the block ends."""
    commands: list[dict[str, Any]] = []
    listening = threading.Event()
    end = f"ECHO monitored-{uuid.uuid4().hex}"

    def watch() -> None:
        with client.monitor() as monitor:
            listening.set()
            for command in monitor.listen():
                if command["command"] == end:
                    return
                commands.append(command)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    listening.wait(5)
    try:
        yield commands
    finally:
        client.echo(end.removeprefix("ECHO "))
        watcher.join(5)


def connection_of(command: dict[str, Any]) -> tuple[str, int]:
    """The client connection that sent a monitored command."""
    return command["client_address"], command["client_port"]
