"""The slice of the Amazon EKS control-plane API that boto3 callers use here.

``DescribeCluster`` (``GET /clusters/{name}``) and ``ListClusters``
(``GET /clusters``), in the restJson protocol: errors carry the code in the
``x-amzn-ErrorType`` header and ``{"message": ...}`` in the body, which is what
botocore's ``RestJSONParser`` reads into ``ClientError.response["Error"]``.
Requests must be SigV4-signed with the dummy key pair; the signature is
recomputed with botocore's signer, so a wrong secret fails as it would on AWS.
Shapes follow the EKS API Reference (DescribeCluster, Cluster, Common Errors).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kubesim.config import ACCESS_KEY_ID, ACCOUNT_ID, SECRET_ACCESS_KEY, ClusterIdentity

log = logging.getLogger(__name__)
JSON = dict[str, Any]
_CREDENTIAL_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
    r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)$"
)
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


@dataclass
class AwsReply:
    """An EKS answer: status, JSON body, headers (the error type among them)."""

    code: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


def aws_error(code: int, error_type: str, message: str) -> AwsReply:
    return AwsReply(code, {"message": message}, {"x-amzn-ErrorType": error_type})


def check_signature(
    method: str, url: str, headers: Mapping[str, str], body: bytes
) -> AwsReply | None:
    """None when the SigV4 ``Authorization`` header is valid, else the AWS error."""
    header = headers.get("Authorization", "")
    if not header:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    found = _CREDENTIAL_RE.match(header)
    if not found:
        return aws_error(
            400,
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential' parameter. Authorization={header}",
        )
    access_key, _day, region, service, signed, signature = found.groups()
    if access_key != ACCESS_KEY_ID:
        return aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    amz_date = headers.get("X-Amz-Date", "")
    names = signed.split(";")
    if not amz_date or any(n not in headers for n in names):
        return aws_error(403, "InvalidSignatureException", _BAD_SIGNATURE)
    request = AWSRequest(method=method, url=url, headers={n: headers[n] for n in names}, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, SECRET_ACCESS_KEY), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(str(expected), signature):
        log.debug("EKS signature mismatch for %s %s", method, url)
        return aws_error(403, "InvalidSignatureException", _BAD_SIGNATURE)
    return None


def describe_cluster(
    identity: ClusterIdentity, name: str, *, endpoint: str, ca_b64: str, created: float
) -> AwsReply:
    if name != identity.name:
        return aws_error(404, "ResourceNotFoundException", f"No cluster found for name: {name}.")
    suffix = hashlib.sha256(identity.arn.encode()).hexdigest()[:32].upper()
    cluster: JSON = {
        "name": identity.name,
        "arn": identity.arn,
        "createdAt": round(created, 3),
        "version": identity.kubernetes_version,
        "endpoint": endpoint,
        "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/eksops-cluster-role",
        "resourcesVpcConfig": {
            "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "securityGroupIds": [],
            "clusterSecurityGroupId": "sg-0a1b2c3d4e5f60003",
            "vpcId": "vpc-0a1b2c3d4e5f60004",
            "endpointPublicAccess": True,
            "endpointPrivateAccess": True,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {
            "serviceIpv4Cidr": "10.100.0.0/16",
            "ipFamily": "ipv4",
            "elasticLoadBalancing": {"enabled": False},
        },
        "logging": {
            "clusterLogging": [
                {
                    "types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
                    "enabled": False,
                }
            ]
        },
        "identity": {
            "oidc": {"issuer": f"https://oidc.eks.{identity.region}.amazonaws.com/id/{suffix}"}
        },
        "status": "ACTIVE",
        "certificateAuthority": {"data": ca_b64},
        "platformVersion": identity.platform_version,
        "tags": {},
        "health": {"issues": []},
        "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"},
        "upgradePolicy": {"supportType": "STANDARD"},
    }
    return AwsReply(200, {"cluster": cluster})


def list_clusters(identity: ClusterIdentity) -> AwsReply:
    return AwsReply(200, {"clusters": [identity.name]})
