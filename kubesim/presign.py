"""A presigned STS ``GetCallerIdentity`` URL, signed with SigV4 on the standard library.

The same token ``aws eks get-token`` and aws-iam-authenticator mint (query
signature, ``X-Amz-Expires=60``, signed headers ``host;x-k8s-aws-id``), without
loading botocore, so the kubeconfig exec plugin answers kubectl in a few tens of
milliseconds. ``kubesim.auth`` verifies it with botocore's own signer, which keeps
this implementation honest (AWS docs: "Create a signed AWS API request", query
string authentication).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def presigned_url(
    cluster: str, region: str, access_key: str, secret: str, now: float | None = None
) -> str:
    stamp = time.gmtime(time.time() if now is None else now)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", stamp)
    day = amz_date[:8]
    host = f"sts.{region}.amazonaws.com"
    scope = f"{day}/{region}/sts/aws4_request"
    params = {
        "Action": "GetCallerIdentity",
        "Version": "2011-06-15",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": "60",
        "X-Amz-SignedHeaders": "host;x-k8s-aws-id",
    }
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )
    canonical = "\n".join(
        [
            "GET",
            "/",
            query,
            f"host:{host}\nx-k8s-aws-id:{cluster}\n",
            "host;x-k8s-aws-id",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), day), region), "sts"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"https://{host}/?{query}&X-Amz-Signature={signature}"


def token(cluster: str, region: str, access_key: str, secret: str) -> str:
    url = presigned_url(cluster, region, access_key, secret)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
