"""The audit trail: one JSON line per call, accepted or refused, saying who did what.

Each line holds ``at`` (ISO 8601), ``tenant``, ``key_id`` (the ID of the key used,
never the key), ``source`` (the caller's address; ``library`` for a producer using
Redis directly), ``operation``, ``target`` (cluster, namespace, name; or a batch),
``request_id``, ``outcome`` (``accepted``, ``refused`` or ``failed``), ``status``
(the HTTP status, where there is one) and ``reason`` (why it was refused: the error
code, such as ``OutOfScope``, ``PolicyViolation``, ``QuotaExceeded``,
``unauthenticated``).

Where lines go is ``AUDIT_SINK``: ``log`` (the default: the ``eksops.audit`` logger at
INFO, so the process's log stream carries them, the message being the JSON alone) or
``file:PATH`` (appended, one line per write, flushed at once). A sink that fails to
write logs the failure and never fails the call it audits. Each line also counts in
``eksops_tenant_calls_total`` (tenant, outcome, reason), so quota and policy refusals
per tenant can be graphed and alerted on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker import metrics
from worker.errors import ConfigurationInvalid
from worker.timestamps import now_iso

AUDIT_LOGGER = "eksops.audit"
logger = logging.getLogger(__name__)
_audit = logging.getLogger(AUDIT_LOGGER)

FIELDS = (
    "tenant",
    "key_id",
    "source",
    "operation",
    "target",
    "request_id",
    "outcome",
    "status",
    "reason",
)


class Auditor:
    """Writes audit lines to the configured sink."""

    def __init__(self, sink: str = "log") -> None:
        self.sink = sink
        self._path: Path | None = None
        self._lock = threading.Lock()
        if sink.startswith("file:"):
            self._path = Path(sink.removeprefix("file:"))
            if not self._path.parent.is_dir():
                raise ConfigurationInvalid(
                    f"AUDIT_SINK {sink}: directory {self._path.parent} does not exist"
                )
        elif sink != "log":
            raise ConfigurationInvalid(f"AUDIT_SINK {sink!r}: give 'log' or 'file:PATH'")

    def record(self, **fields: Any) -> dict[str, Any]:
        """Write one line of ``fields`` (unknown names are refused); return it."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown audit fields {sorted(unknown)}")
        line = {"at": now_iso(), **{name: fields.get(name) for name in FIELDS}}
        text = json.dumps(line, separators=(",", ":"))
        metrics.tenant_call(fields.get("tenant"), str(fields.get("outcome")), fields.get("reason"))
        if self._path is None:
            _audit.info("%s", text)
            return line
        try:
            with self._lock, self._path.open("a", encoding="utf-8") as out:
                out.write(text + "\n")
        except OSError as exc:
            logger.error("Audit line not written to %s: %s", self._path, exc)
        return line


def target_of(arguments: Mapping[str, Any]) -> str:
    """Return an operation's target for the trail: ``cluster/namespace[/job]``."""
    cluster = arguments.get("cluster")
    name = cluster.get("name") if isinstance(cluster, dict) else None
    namespace = arguments.get("namespace_name") or arguments.get("namespace") or "default"
    parts = [str(name or "default"), str(namespace)]
    if arguments.get("job_name"):
        parts.append(str(arguments["job_name"]))
    elif isinstance(arguments.get("job_manifest"), dict):
        metadata = arguments["job_manifest"].get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("name"):
            parts.append(str(metadata["name"]))
    return "/".join(parts)
