"""Timestamps in the seed's form: ISO 8601 with an explicit UTC offset.

The Kubernetes API writes RFC 3339 with ``Z`` (``2026-01-20T10:30:00Z``); the seed API
answered Python's ``isoformat()`` (``2026-01-20T10:30:00+00:00``). Callers parse the
seed form, so eksops keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_timestamp(value: str | None) -> str | None:
    """Return an RFC 3339 timestamp from the API as ISO 8601 with offset, or ``None``."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def now_iso() -> str:
    """Return the current UTC time in the same form."""
    return datetime.now(UTC).isoformat()
