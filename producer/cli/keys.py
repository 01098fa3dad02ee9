"""``eksops keys new TENANT``: a fresh API key and the keys-file line that admits it.

The key is printed once, to stdout, for the tenant's operators to store; the keys file
(``GATEWAY_KEYS_FILE``) gets only its SHA-256 (see ``producer.gateway.keyring``). The
key ID defaults to ``TENANT-YYYYMMDD``, so a rotation (a second key beside the first,
then the first removed) keeps both apart in the audit trail.
"""

from __future__ import annotations

import datetime
import secrets

import click

from producer.cli.common import fail, out
from producer.gateway.keyring import describe_key_entry
from worker.keysfile import KeyEntry
from worker.names import check_tenant_name
from worker.tenants import UNRESTRICTED

KEY_BYTES = 32


@click.group(help="Manage the gateway's API keys (GATEWAY_KEYS_FILE).")
def keys() -> None:
    pass


@keys.command("new", help="Print a new API key for TENANT and the keys-file line to add.")
@click.argument("tenant")
@click.option("--id", "key_id", help="The key's ID (default: TENANT-YYYYMMDD).")
def new(tenant: str, key_id: str | None) -> None:
    try:
        check_tenant_name(tenant)
    except ValueError as exc:
        fail(f"invalid tenant: {exc}")
    if tenant == UNRESTRICTED:
        fail(f"invalid tenant: {UNRESTRICTED!r} is reserved for GATEWAY_API_KEYS")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    key = secrets.token_urlsafe(KEY_BYTES)
    entry = describe_key_entry(key_id or f"{tenant}-{today}", key)
    try:
        KeyEntry.model_validate(entry)
    except ValueError as exc:
        fail(f"invalid key id: {exc}")
    out.print(f"key: {key}", markup=False)
    out.print(f"add under tenants.{tenant}.keys in GATEWAY_KEYS_FILE:", markup=False)
    out.print(f"  - {{id: {entry['id']}, sha256: {entry['sha256']}}}", markup=False)
