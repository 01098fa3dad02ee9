"""Client-side helpers: mint EKS bearer tokens and build clients the worker's way.

``mint_token`` signs a presigned STS ``GetCallerIdentity`` URL with the
``x-k8s-aws-id`` header, as aws-iam-authenticator clients (and the worker) do;
``kube_api_client`` goes DescribeCluster -> CA file -> ``kubernetes.client``.
Kept free of pytest so tools such as ``kubesim.loadtest`` can use them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.awsrequest import AWSRequest

from kubesim.auth import CLUSTER_ID_HEADER, TOKEN_PREFIX
from kubesim.config import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from kubesim.simulator import Simulator


@functools.cache
def _sts_client(region: str, access_key: str, secret: str) -> Any:
    session = botocore.session.Session()
    return session.create_client(
        "sts", region_name=region, aws_access_key_id=access_key, aws_secret_access_key=secret
    )


def mint_token(
    cluster: str,
    *,
    region: str = "us-east-1",
    access_key: str = ACCESS_KEY_ID,
    secret: str = SECRET_ACCESS_KEY,
) -> str:
    """An EKS bearer token: a presigned GetCallerIdentity URL signing ``x-k8s-aws-id``."""
    client = _sts_client(region, access_key, secret)

    def add_cluster_header(request: AWSRequest, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    event = "before-sign.sts.GetCallerIdentity"
    client.meta.events.register(event, add_cluster_header)
    try:
        url = client.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
        )
    finally:
        client.meta.events.unregister(event, add_cluster_header)
    encoded = base64.urlsafe_b64encode(str(url).encode()).decode().rstrip("=")
    return TOKEN_PREFIX + encoded


def kube_api_client(sim: Simulator, token: str | None = None, *, retries: int | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` set up from DescribeCluster, like the worker.

    ``retries`` is urllib3's: by default it retries 429/503 answers that carry
    ``Retry-After`` three times, sleeping as told - pass 0 to see the first answer.
    """
    import kubernetes.client  # noqa: PLC0415 - only suites that use it pay the import

    eks = boto3.client(
        "eks",
        region_name=sim.region,
        endpoint_url=sim.url,
        verify=str(sim.ca_pem_path),
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    try:
        cluster = eks.describe_cluster(name=sim.cluster)["cluster"]
    finally:
        eks.close()
    ca_pem = base64.b64decode(cluster["certificateAuthority"]["data"])
    digest = hashlib.sha256(ca_pem).hexdigest()[:16]
    ca_file = Path(tempfile.gettempdir()) / f"kubesim-cluster-ca-{digest}.pem"
    if not ca_file.exists():
        ca_file.write_bytes(ca_pem)
    config = kubernetes.client.Configuration()
    config.host = cluster["endpoint"]
    config.ssl_ca_cert = str(ca_file)
    config.verify_ssl = True
    bearer = token if token is not None else mint_token(sim.cluster, region=sim.region)
    config.api_key = {"authorization": f"Bearer {bearer}"}
    if retries is not None:
        config.retries = retries
    return kubernetes.client.ApiClient(config)
