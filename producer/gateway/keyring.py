"""API keys → principals: which tenant a presented key belongs to.

Keys come from ``GATEWAY_KEYS_FILE`` (tenants with key hashes, scopes, quotas and
policies: its schema and reloads are :mod:`worker.keysfile`) and from
``GATEWAY_API_KEYS``, whose keys keep working as before: each is the one unrestricted
tenant ``default``. ``eksops keys new TENANT`` prints a fresh key and its line. A
presented key is hashed (SHA-256) and compared with every known hash in constant time,
so timing does not tell which key nearly matched; keys are never logged, only key IDs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.keysfile import KeysFileWatch
from worker.tenants import UNRESTRICTED_TENANT, Tenant


def key_hash(key: str) -> str:
    """Return the hash the keys file stores for ``key`` (SHA-256, lowercase hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and the ID of the key it used (never the key)."""

    tenant: Tenant
    key_id: str


#: The caller of a gateway without keys: unrestricted, anonymous.
ANONYMOUS = Principal(UNRESTRICTED_TENANT, "-")


class Keyring:
    """The principals of ``GATEWAY_API_KEYS`` and ``GATEWAY_KEYS_FILE``, kept current."""

    def __init__(self, *, api_keys: tuple[bytes, ...] = (), keys_file: Path | None = None) -> None:
        self._legacy = {
            hashlib.sha256(key).hexdigest(): Principal(UNRESTRICTED_TENANT, f"api-key-{n}")
            for n, key in enumerate(api_keys, start=1)
        }
        self._watch = KeysFileWatch(keys_file) if keys_file is not None else None

    @property
    def enabled(self) -> bool:
        """Return whether callers must present a key."""
        return bool(self._legacy) or self._watch is not None

    def _known(self) -> list[tuple[str, Principal]]:
        known = list(self._legacy.items())
        if self._watch is not None:
            for digest, (tenant, key_id) in self._watch.current().by_hash.items():
                known.append((digest, Principal(tenant, key_id)))
        return known

    def principal(self, presented: str | None) -> Principal | None:
        """Return the principal of a presented key; ``None`` if it is no known key."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest().encode()
        found: Principal | None = None
        for known, principal in self._known():
            if hmac.compare_digest(digest, known.encode()):
                found = principal
        return found

    def tenants(self) -> dict[str, Tenant]:
        """Return the tenants of the keys file, by name."""
        return dict(self._watch.current().by_name) if self._watch is not None else {}


def describe_key_entry(key_id: str, key: str) -> dict[str, Any]:
    """Return the keys-file entry of a new key."""
    return {"id": key_id, "sha256": key_hash(key)}
