"""Optional API-key authentication for every route but ``/health``.

Off when neither ``GATEWAY_API_KEYS`` nor ``GATEWAY_KEYS_FILE`` is set (then no route
declares a security scheme in OpenAPI, and every caller is the unrestricted tenant).
On, a request must carry a known key in ``X-API-Key`` or as ``Authorization: Bearer
<key>``; anything else is a 401. The key's principal (tenant and key ID, see
:mod:`producer.gateway.keyring`) is put on ``request.state.principal`` for the routes.
Keys are compared in constant time against every known one (no early exit that would
reveal which one nearly matched), and never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from producer.gateway.keyring import ANONYMOUS, Keyring, Principal

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
UNAUTHORIZED = f"Missing or invalid API key (send it in {API_KEY_HEADER} or as a Bearer token)"

_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="One of GATEWAY_API_KEYS."
)
_bearer = HTTPBearer(auto_error=False, description="One of GATEWAY_API_KEYS, as a Bearer token.")


def key_matches(candidate: str | None, keys: tuple[bytes, ...]) -> bool:
    """Return whether ``candidate`` is one of ``keys``, in time independent of which."""
    if not candidate:
        return False
    presented = candidate.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def presented_key(headers: Headers) -> str | None:
    """Return the key a request presents, as the dependencies below read it."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    return headers.get(API_KEY_HEADER) or bearer or None


def require_api_key(keys: tuple[bytes, ...]) -> Callable[..., Awaitable[None]]:
    """Return the dependency that lets a request through only with one of ``keys``."""

    async def check(
        api_key: Annotated[str | None, Security(_api_key_header)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> None:
        presented = api_key or (bearer.credentials if bearer else None)
        if not key_matches(presented, keys):
            logger.warning(
                "Rejected request: %s", "no API key" if not presented else "wrong API key"
            )
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    return check


def require_principal(keyring: Keyring) -> Callable[..., Awaitable[None]]:
    """Return the dependency that admits a known key and records whose it is."""

    async def check(
        request: Request,
        api_key: Annotated[str | None, Security(_api_key_header)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> None:
        presented = api_key or (bearer.credentials if bearer else None)
        principal = keyring.principal(presented)
        if principal is None:
            logger.warning(
                "Rejected request: %s", "no API key" if not presented else "wrong API key"
            )
            request.state.refused = "unauthenticated"
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        request.state.principal = principal

    return check


def principal_of(request: Request) -> Principal:
    """Return the caller's principal (the anonymous unrestricted one without keys)."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal
