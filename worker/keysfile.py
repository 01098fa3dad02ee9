"""The keys file (``GATEWAY_KEYS_FILE``): tenants, their key hashes, scopes, quotas, policies.

One schema, read by the gateway (which key is which tenant's, see
``producer.gateway.keyring``) and, with message signing on, by workers (the scope to
check again before any API call). Holds only SHA-256 hashes of keys, never keys::

    default_policy: {pod_security: baseline}   # tenants without a policy of their own
    tenants:
      team-a:
        keys: [{id: team-a-2026-12, sha256: <64 hex>}]   # one or two (rotation)
        scope: {clusters: [default], namespaces: [team-a, team-a-*], operations: [create_job]}
        quotas: {submissions_per_second: 5, burst: 20, in_flight: 200, max_bulk_items: 1000}
        policy: {registries: [ghcr.io/team-a/], pod_security: restricted}

:class:`KeysFileWatch` reads it at start (a bad file raises ``ConfigurationInvalid``
with one line naming the problem) and again whenever its modification time, size or
inode changes (one ``stat`` per second at most); a reload that fails keeps the last
good file and logs why, once per change. Pure: pydantic and PyYAML.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from worker.errors import ConfigurationInvalid
from worker.policy import JobPolicy
from worker.tenants import UNRESTRICTED, Quotas, Scope, Tenant
from worker.validation import explain

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MAX_KEYS_PER_TENANT = 2
_RECHECK_SECONDS = 1.0


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
    """The whole keys file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_policy: JobPolicy | None = None
    tenants: dict[str, TenantEntry] = Field(default_factory=dict)


class Tenants:
    """A parsed keys file: each tenant, and whose each key hash is."""

    def __init__(self, parsed: KeysFile, *, source: str) -> None:
        self.by_name: dict[str, Tenant] = {}
        self.by_hash: dict[str, tuple[Tenant, str]] = {}
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
            self.by_name[name] = tenant
            for key in entry.keys:
                if key.sha256 in self.by_hash:
                    raise ConfigurationInvalid(f"{source}: key {key.id} of {name} is listed twice")
                if key.id in ids:
                    raise ConfigurationInvalid(f"{source}: key id {key.id} is used twice")
                ids.add(key.id)
                self.by_hash[key.sha256] = (tenant, key.id)


def parse_keys_file(text: str, *, source: str) -> Tenants:
    """Return the tenants of a keys file, or raise ConfigurationInvalid naming the problem."""
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
    return Tenants(parsed, source=source)


def _stamp(path: Path) -> tuple[int, int, int]:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class KeysFileWatch:
    """The keys file at ``path``, kept current: reread on change, the last good kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._source = f"GATEWAY_KEYS_FILE {path}"
        self._lock = threading.Lock()
        self._failed_stamp: tuple[int, int, int] | None = None
        self._checked_at = time.monotonic()
        self._stamp, self._tenants = self._read()

    def _read(self) -> tuple[tuple[int, int, int], Tenants]:
        try:
            stamp = _stamp(self.path)
            text = self.path.read_text()
        except OSError as exc:
            raise ConfigurationInvalid(f"{self._source}: cannot be read ({exc.strerror})") from None
        return stamp, parse_keys_file(text, source=self._source)

    def current(self) -> Tenants:
        """Return the tenants of the file as it is now (the last good version)."""
        now = time.monotonic()
        if now - self._checked_at < _RECHECK_SECONDS:
            return self._tenants
        with self._lock:
            self._checked_at = now
            try:
                stamp = _stamp(self.path)
            except OSError as exc:
                self._failed(None, f"{self._source}: cannot be read ({exc.strerror})")
                return self._tenants
            if stamp == self._stamp:
                return self._tenants
            try:
                self._stamp, self._tenants = self._read()
            except ConfigurationInvalid as exc:
                self._failed(stamp, str(exc))
                return self._tenants
            self._failed_stamp = None
            logger.info(
                "Keys file reloaded: %d keys of %d tenants",
                len(self._tenants.by_hash),
                len(self._tenants.by_name),
            )
            return self._tenants

    def _failed(self, stamp: tuple[int, int, int] | None, message: str) -> None:
        if stamp is None or stamp != self._failed_stamp:
            logger.error("Keys file not reloaded, keeping the last good one: %s", message)
        self._failed_stamp = stamp
