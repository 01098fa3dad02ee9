"""The environment a client needs to reach a running kubesim, and its dotenv file.

The same dict is ``Simulator.env`` and the content of ``--env-file``: standard AWS
variables (so unmodified boto3 finds the EKS endpoint and trusts our CA), the
cluster name and region eksops reads, and ``KUBESIM_URL`` for the admin API. The
file is written to a temporary name and renamed, so a launcher polling for it never
reads half of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubesim.config import ACCESS_KEY_ID, SECRET_ACCESS_KEY, ClusterIdentity


def client_env(url: str, identity: ClusterIdentity, ca_pem_path: Path) -> dict[str, str]:
    return {
        "EKS_CLUSTER_NAME": identity.name,
        "EKS_REGION": identity.region,
        "AWS_ENDPOINT_URL_EKS": url,
        "AWS_CA_BUNDLE": str(ca_pem_path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": identity.region,
        "KUBESIM_URL": url,
    }


def render(env: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


def write(path: Path, env: dict[str, str]) -> None:
    """Write ``env`` as ``KEY=VALUE`` lines, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render(env), encoding="utf-8")
    tmp.replace(path)
