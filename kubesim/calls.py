"""The shape of one Kubernetes API call as resource handlers see it.

Handlers are plain functions from ``Call`` to ``Reply``; they know nothing of
aiohttp, which keeps them small and lets the server module own HTTP concerns
(bodies, headers, faults, counters, negotiation) in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesim import negotiation, statuses
from kubesim.requestinfo import RequestInfo

JSON = dict[str, Any]


@dataclass
class Call:
    """A decoded, authenticated and authorized request."""

    info: RequestInfo
    query: Mapping[str, str]
    raw_body: bytes
    user: str
    now: float
    content_type: str = ""
    query_all: Mapping[str, list[str]] = field(default_factory=dict)
    _decoded: Any = None

    @property
    def dry_run(self) -> bool:
        return bool(self.query_all.get("dryRun")) or self.query.get("dryRun") == "All"

    def json_body(self, *, required: bool) -> JSON:
        """The body as an object, decoded by its Content-Type (JSON, YAML, protobuf)."""
        if not self.raw_body.strip():
            if required:
                raise statuses.bad_request("the body of the request was in an unknown format")
            return {}
        if self._decoded is None:
            self._decoded = negotiation.decode_body(self.raw_body, self.content_type)
        value = self._decoded
        if not isinstance(value, dict):
            raise statuses.bad_request(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_kind(value)} into Go value of type struct {{ APIVersion string "
                '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
            )
        return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null"


@dataclass
class Reply:
    """What a handler answers: an HTTP code, a JSON body and extra headers."""

    code: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    kind: Any = None
    """The served ``Kind`` the body is (a list of), for Table and metadata views."""


def check_type_meta(body: JSON, api_version: str, kind: str) -> None:
    """The decoder's complaint when a body names another kind or version."""
    got_version = body.get("apiVersion")
    got_kind = body.get("kind")
    if got_version and got_version != api_version:
        raise statuses.bad_request(
            f"the API version in the data ({got_version}) does not match the expected "
            f"API version ({api_version})"
        )
    if got_kind and got_kind != kind:
        raise statuses.bad_request(
            f"the kind in the data ({got_kind}) does not match the expected kind ({kind})"
        )


def warning_header(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {
        "Warning": ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings)
    }
