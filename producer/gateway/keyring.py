"""API keys → principals: which tenant a key belongs to, read from ``GATEWAY_KEYS_FILE``.

The keys file (YAML) holds only SHA-256 hashes of keys, never keys::

    default_policy:                 # optional: the Job policy of tenants without one
      pod_security: baseline
    tenants:
      team-a:
        keys:                       # one or two (rotation: add the new, then drop the old)
          - {id: team-a-2026-12, sha256: 9f86d081884c7d65...}   # 64 hex characters
        scope: {clusters: [default], namespaces: [team-a, team-a-*], operations: [create_job]}
        quotas: {submissions_per_second: 5, burst: 20, in_flight: 200, max_bulk_items: 1000}
        policy: {registries: [ghcr.io/team-a/], pod_security: restricted}

``eksops keys new TENANT`` prints a fresh key and its line. The file is read at start
(a bad one stops the gateway with one line naming the problem) and again whenever its
modification time, size or inode changes (one ``stat`` per second at most); a reload
that fails keeps the last good file and logs why, once per change. ``GATEWAY_API_KEYS``
keeps working beside it: each of those keys is the one unrestricted tenant
``default``. A presented key is hashed and compared with every known hash in constant
time, so timing does not tell which key nearly matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from worker.errors import ConfigurationInvalid
from worker.policy import JobPolicy
from worker.tenants import UNRESTRICTED, UNRESTRICTED_TENANT, Quotas, Scope, Tenant
from worker.validation import explain

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MAX_KEYS_PER_TENANT = 2
_RECHECK_SECONDS = 1.0


def key_hash(key: str) -> str:
    """Return the hash the keys file stores for ``key`` (SHA-256, lowercase hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _check_sha(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ValueError("sha256 must be 64 lowercase hex characters (the key's SHA-256)")
    return value


def _check_id(value: str) -> str:
    if not _KEY_ID.fullmatch(value):
        raise ValueError(f"key id {value!r} must be 1-63 letters, digits, '.', '_' or '-'")
    return value


class KeyEntry(BaseModel):
    """One key of a tenant: an ID (logged, audited) and the key's hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, AfterValidator(_check_id)]
    sha256: Annotated[str, AfterValidator(_check_sha)]


class TenantEntry(BaseModel):
    """A tenant as the keys file describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[KeyEntry] = Field(min_length=1, max_length=MAX_KEYS_PER_TENANT)
    scope: Scope = Field(default_factory=Scope)
    quotas: Quotas = Field(default_factory=Quotas)
    policy: JobPolicy | None = None


class KeysFile(BaseModel):
    """The whole keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_policy: JobPolicy | None = None
    tenants: dict[str, TenantEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and the ID of the key it used (never the key)."""

    tenant: Tenant
    key_id: str


#: The caller of a gateway without keys: unrestricted, anonymous.
ANONYMOUS = Principal(UNRESTRICTED_TENANT, "-")


def parse_keys_file(text: str, *, source: str) -> dict[str, Principal]:
    """Return each key hash's principal, or raise ConfigurationInvalid naming the problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationInvalid(f"{source}: not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigurationInvalid(f"{source}: expected a mapping with 'tenants'")
    try:
        parsed = KeysFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationInvalid(f"{source}: {explain(exc, what='keys file')}") from None
    principals: dict[str, Principal] = {}
    ids: set[str] = set()
    for name, entry in parsed.tenants.items():
        if name == UNRESTRICTED:
            raise ConfigurationInvalid(
                f"{source}: tenant name {UNRESTRICTED!r} is reserved for GATEWAY_API_KEYS"
            )
        try:
            tenant = Tenant(
                name=name,
                scope=entry.scope,
                quotas=entry.quotas,
                policy=entry.policy or parsed.default_policy,
            )
        except ValidationError as exc:
            raise ConfigurationInvalid(f"{source}: {explain(exc, what='tenant')}") from None
        for key in entry.keys:
            if key.sha256 in principals:
                raise ConfigurationInvalid(f"{source}: key {key.id} of {name} is listed twice")
            if key.id in ids:
                raise ConfigurationInvalid(f"{source}: key id {key.id} is used twice")
            ids.add(key.id)
            principals[key.sha256] = Principal(tenant, key.id)
    return principals


class Keyring:
    """The principals of ``GATEWAY_API_KEYS`` and ``GATEWAY_KEYS_FILE``, kept current."""

    def __init__(self, *, api_keys: tuple[bytes, ...] = (), keys_file: Path | None = None) -> None:
        self._legacy = {
            hashlib.sha256(key).hexdigest(): Principal(UNRESTRICTED_TENANT, f"api-key-{n}")
            for n, key in enumerate(api_keys, start=1)
        }
        self._file = keys_file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._failed_stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._from_file: dict[str, Principal] = {}
        if keys_file is not None:
            self._from_file = self._read(keys_file)

    @property
    def enabled(self) -> bool:
        """Return whether callers must present a key."""
        return bool(self._legacy) or self._file is not None

    def _read(self, path: Path) -> dict[str, Principal]:
        try:
            stamp = _stamp(path)
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationInvalid(
                f"GATEWAY_KEYS_FILE {path}: cannot be read ({exc.strerror})"
            ) from None
        principals = parse_keys_file(text, source=f"GATEWAY_KEYS_FILE {path}")
        self._stamp = stamp
        return principals

    def refresh(self, *, force: bool = False) -> None:
        """Read the keys file again if it changed; on an error keep the last good one."""
        path = self._file
        if path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < _RECHECK_SECONDS:
            return
        with self._lock:
            self._checked_at = now
            try:
                stamp = _stamp(path)
            except OSError as exc:
                self._failed(None, f"GATEWAY_KEYS_FILE {path}: cannot be read ({exc.strerror})")
                return
            if stamp == self._stamp:
                return
            try:
                self._from_file = self._read(path)
            except ConfigurationInvalid as exc:
                self._failed(stamp, str(exc))
                return
            self._failed_stamp = None
            tenants = len({p.tenant.name for p in self._from_file.values()})
            logger.info("Keys file reloaded: %d keys of %d tenants", len(self._from_file), tenants)

    def _failed(self, stamp: tuple[int, int, int] | None, message: str) -> None:
        if stamp is None or stamp != self._failed_stamp:
            logger.error("Keys file not reloaded, keeping the last good one: %s", message)
        self._failed_stamp = stamp

    def principal(self, presented: str | None) -> Principal | None:
        """Return the principal of a presented key; ``None`` if it is no known key."""
        if not presented:
            return None
        self.refresh()
        digest = hashlib.sha256(presented.encode()).hexdigest().encode()
        found: Principal | None = None
        for known, principal in (*self._legacy.items(), *self._from_file.items()):
            if hmac.compare_digest(digest, known.encode()):
                found = principal
        return found

    def tenants(self) -> dict[str, Tenant]:
        """Return the tenants known now, by name."""
        self.refresh()
        return {p.tenant.name: p.tenant for p in self._from_file.values()}


def _stamp(path: Path) -> tuple[int, int, int]:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def describe_key_entry(key_id: str, key: str) -> dict[str, Any]:
    """Return the keys-file entry of a new key."""
    return {"id": key_id, "sha256": key_hash(key)}
