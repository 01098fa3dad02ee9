"""kubesim's own certificate authority and the server certificate it signs.

Clients verify TLS for real (boto3 through ``AWS_CA_BUNDLE``, the kubernetes client
through the CA that DescribeCluster returns), so the simulator needs a CA whose PEM
it can hand out. trustme makes one in memory; we write only the CA certificate to
disk. With a state directory the CA key is kept too, so a restarted kubesim keeps
the CA that long-lived clients already trust.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

log = logging.getLogger(__name__)

SERVER_IDENTITIES = ("127.0.0.1", "::1", "localhost")
CA_FILE = "kubesim-ca.pem"
CA_KEY_FILE = "kubesim-ca.key"


@dataclass(frozen=True)
class TlsMaterial:
    """The server's SSL context and where clients find the CA certificate."""

    ssl_context: ssl.SSLContext
    ca_pem: bytes
    ca_pem_path: Path
    directory: Path
    owns_directory: bool


def _load_or_create_ca(state_dir: Path | None) -> trustme.CA:
    if state_dir is not None:
        cert_path, key_path = state_dir / CA_FILE, state_dir / CA_KEY_FILE
        if cert_path.exists() and key_path.exists():
            log.info("reusing CA from %s", cert_path)
            return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    return trustme.CA(organization_name="kubesim")


def create_tls(state_dir: Path | None, extra_identities: tuple[str, ...] = ()) -> TlsMaterial:
    """Make (or reload) the CA, issue a server certificate, write the CA PEM."""
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        directory, owns = state_dir, False
    else:
        directory, owns = Path(tempfile.mkdtemp(prefix="kubesim-")), True
    ca = _load_or_create_ca(state_dir)
    identities = tuple(dict.fromkeys(SERVER_IDENTITIES + extra_identities))
    server_cert = ca.issue_cert(*identities, common_name="kube-apiserver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca_pem = ca.cert_pem.bytes()
    ca_path = directory / CA_FILE
    _write_atomic(ca_path, ca_pem)
    if state_dir is not None:
        key_path = directory / CA_KEY_FILE
        if not key_path.exists():
            _write_atomic(key_path, ca.private_key_pem.bytes(), mode=0o600)
    return TlsMaterial(context, ca_pem, ca_path, directory, owns)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def cleanup(material: TlsMaterial) -> None:
    """Remove the temporary directory we created; a state directory stays."""
    if not material.owns_directory:
        return
    for child in material.directory.iterdir():
        child.unlink(missing_ok=True)
    material.directory.rmdir()
