"""``python -m kubesim.credential``: the kubeconfig exec plugin, like ``aws eks get-token``.

Prints an ``ExecCredential`` (``client.authentication.k8s.io/v1beta1``) whose token
is a presigned STS ``GetCallerIdentity`` URL signed for the cluster (header
``x-k8s-aws-id``), from the AWS credentials in the environment (the kubeconfig
written by ``python -m kubesim kubeconfig`` sets kubesim's dummy key pair), with an
expiry 14 minutes ahead as the AWS CLI reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kubesim.config import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from kubesim.presign import token as mint

_VALID_SECONDS = 14 * 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesim.credential", description=__doc__)
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    args = parser.parse_args(argv)
    token = mint(
        args.cluster_name,
        args.region,
        os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    )
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + _VALID_SECONDS))
    credential = {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {"expirationTimestamp": expires, "token": token},
    }
    sys.stdout.write(json.dumps(credential) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
