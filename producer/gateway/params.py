"""Parameters shared by the gateway's routes: its service, the request ID, ``?wait``.

Declared once so every route documents them the same way in OpenAPI.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request

from producer.gateway.auth import principal_of
from producer.gateway.keyring import Principal
from producer.gateway.service import Gateway
from producer.gateway.waiting import WaitFor


def gateway(request: Request) -> Gateway:
    """Return the app's :class:`Gateway` (set by the factory)."""
    service: Gateway = request.app.state.gateway
    return service


def request_id(request: Request) -> str:
    """Return this request's ID, assigned from ``X-Request-ID`` by the middleware."""
    rid: str = request.state.request_id
    return rid


GatewayDep = Annotated[Gateway, Depends(gateway)]
#: Who is calling: tenant and key ID (the unrestricted tenant when keys are off).
PrincipalDep = Annotated[Principal, Depends(principal_of)]
RequestIdDep = Annotated[str, Depends(request_id)]
Wait = Annotated[
    float | None,
    Query(
        ge=0,
        allow_inf_nan=False,
        description="Wait up to this many seconds for the outcome (capped by "
        "GATEWAY_WAIT_MAX_SECONDS) and answer as the seed API did; 202 if it is not done.",
    ),
]


def wait_for(request: Request, wait: Wait = None) -> WaitFor | None:
    """Return the caller's wait, if it asked for one (a caller gone frees its slot)."""
    return None if wait is None else WaitFor(wait, request.is_disconnected)


WaitDep = Annotated[WaitFor | None, Depends(wait_for)]
WaitForJob = Annotated[
    Literal["complete"] | None,
    Query(
        description="complete: once the request succeeded, also wait (within ?wait, or "
        "GATEWAY_WAIT_MAX_SECONDS) for the Job itself to end, and answer with its status: "
        "200 when it has ended (succeeded or failed: see state), 202 while it still runs."
    ),
]
CallbackUrl = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="POST the request's end (and, for a create-job, its Job's end) to this "
        "http(s) URL as JSON signed with HMAC-SHA256 (X-Eksops-Signature); retried with "
        "backoff; the request's status shows each delivery's state.",
    ),
]
# The rule worker.names.check_dns1123_label enforces, stated for the schema only: the
# contracts validate (one place, one wording), the schema tells clients and fuzzers.
DNS1123_LABEL = {"pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "minLength": 1, "maxLength": 63}


def _name(description: str, example: str) -> Any:
    return Query(
        description=description,
        json_schema_extra=DNS1123_LABEL,
        openapi_examples={"seed": {"value": example}},
    )


JobName = Annotated[str, _name("Name of the Job (an RFC 1123 label).", "my-job")]
Namespace = Annotated[str, _name("Kubernetes namespace of the Job.", "default")]
NamespaceName = Annotated[str, _name("Name of the Namespace (RFC 1123 label).", "my-namespace")]
AllowUnmanaged = Annotated[
    bool,
    Query(description="Also delete a namespace eksops did not create (never a protected one)."),
]
TailLines = Annotated[
    int, Query(ge=1, le=10_000, description="Lines from the end of each container's log.")
]
_REQUIRED = inspect.Parameter.empty
#: Each query parameter an operation's arguments may travel in: its type and default.
QUERY_PARAMETERS: dict[str, tuple[Any, Any]] = {
    "job_name": (JobName, _REQUIRED),
    "namespace": (Namespace, "default"),
    "namespace_name": (NamespaceName, _REQUIRED),
    "allow_unmanaged": (AllowUnmanaged, False),
    "tail_lines": (TailLines, 100),
}
