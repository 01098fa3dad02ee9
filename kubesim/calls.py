"""The shape of one Kubernetes API call as resource handlers see it.

Handlers (namespaces, jobs, discovery) are plain functions from ``Call`` to
``Reply``; they know nothing of aiohttp, which keeps them small and lets the server
module own HTTP concerns (bodies, headers, faults, counters) in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesim import statuses
from kubesim.requestinfo import RequestInfo

JSON = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """A decoded, authenticated and authorized request."""

    info: RequestInfo
    query: Mapping[str, str]
    raw_body: bytes
    user: str
    now: float

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    def json_body(self, *, required: bool) -> JSON:
        """The body as a JSON object; an unparsable one is the decoder's 400."""
        if not self.raw_body.strip():
            if required:
                raise statuses.bad_request("the body of the request was in an unknown format")
            return {}
        try:
            value = json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise statuses.bad_request(
                f"couldn't get version/kind; json parse error: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise statuses.bad_request(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{type(value).__name__} into Go value of type struct"
            )
        return value


@dataclass
class Reply:
    """What a handler answers: an HTTP code, a JSON body and extra headers."""

    code: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


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
