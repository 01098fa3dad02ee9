"""``python -m kubesim kubeconfig``: a kubeconfig for people, with an EKS exec plugin.

The kubeconfig names the running kubesim as an EKS cluster would appear after
``aws eks update-kubeconfig``: the endpoint, the CA (embedded, so the file stands
alone) and a user whose credentials come from an exec plugin. The plugin is
``python -m kubesim.credential`` run by this very interpreter, which mints a token
the way ``aws eks get-token`` does (a presigned STS ``GetCallerIdentity`` URL with
``x-k8s-aws-id``) - no AWS CLI needed. After ``make run``::

    kubectl --kubeconfig .run/kubeconfig get jobs -A
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import Any

import yaml

EXEC_API = "client.authentication.k8s.io/v1beta1"


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def build(env: dict[str, str], python: str = sys.executable) -> dict[str, Any]:
    cluster, region = env["EKS_CLUSTER_NAME"], env["EKS_REGION"]
    arn = f"arn:aws:eks:{region}:123456789012:cluster/{cluster}"
    ca = Path(env["AWS_CA_BUNDLE"]).read_bytes()
    user_env = [
        {"name": "AWS_ACCESS_KEY_ID", "value": env["AWS_ACCESS_KEY_ID"]},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": env["AWS_SECRET_ACCESS_KEY"]},
        {"name": "AWS_DEFAULT_REGION", "value": region},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": arn,
                "cluster": {
                    "server": env["AWS_ENDPOINT_URL_EKS"],
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [
            {
                "name": arn,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API,
                        "command": python,
                        "args": [
                            "-m",
                            "kubesim.credential",
                            "--cluster-name",
                            cluster,
                            "--region",
                            region,
                        ],
                        "env": user_env,
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
        "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}],
        "current-context": arn,
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubesim kubeconfig",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env-file", type=Path, required=True, help="kubesim's env file")
    parser.add_argument("--out", type=Path, required=True, help="kubeconfig to write")
    args = parser.parse_args(argv)
    write(args.out, build(read_env(args.env_file)))
    return 0
