"""Bearer-token authentication the way EKS (aws-iam-authenticator) does it.

A token is ``k8s-aws-v1.`` + base64url(no padding) of a presigned STS
``GetCallerIdentity`` URL whose signed headers include ``x-k8s-aws-id`` (the cluster
name). EKS forwards the URL to STS; kubesim instead recomputes the SigV4 signature
with botocore's own signer and the dummy secret, which proves the same things: the
caller holds the key, and the token was minted for *this* cluster. Verified tokens
are cached so only the first request with a token pays for HMACs.

Checks follow ``pkg/token/token.go`` of kubernetes-sigs/aws-iam-authenticator; any
failure yields the single Unauthorized body of the apiserver's authn filter.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kubesim.config import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SimConfig

log = logging.getLogger(__name__)

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
_HOST_RE = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com$")
_ALLOWED_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_FUTURE_SKEW = 300.0
_CACHE_LIMIT = 10_000


class TokenRejected(Exception):
    """Raised when a bearer token fails a check; the text is for logs only."""


@dataclass(frozen=True)
class Caller:
    """An authenticated identity and when its token was signed (epoch seconds)."""

    arn: str
    signed_at: float


class TokenVerifier:
    """Verifies tokens for one cluster, with a cache and admin-driven revocation."""

    def __init__(self, cluster: str, config: SimConfig) -> None:
        self._cluster = cluster
        self._config = config
        self._secrets = {ACCESS_KEY_ID: SECRET_ACCESS_KEY}
        self._cache: dict[str, Caller] = {}
        self._revoked: set[str] = set()
        self.revoked_before = 0.0
        self.reject_all = False
        self.verified = 0
        """Distinct tokens verified (cache misses): how often clients minted one."""

    def reset(self) -> None:
        self._cache.clear()
        self._revoked.clear()
        self.revoked_before = 0.0
        self.reject_all = False
        self.verified = 0

    def revoke_existing(self) -> None:
        """Reject every token signed up to now; tokens minted afterwards still work.

        X-Amz-Date has one-second resolution, so tokens already seen are revoked by
        identity and unseen ones by date (strictly earlier than this second).
        """
        self._revoked.update(self._cache)
        self.revoked_before = float(int(time.time()))

    def authenticate(self, header: str | None) -> Caller:
        """Return the caller for an ``Authorization`` header or raise TokenRejected."""
        if self.reject_all:
            raise TokenRejected("all tokens rejected by admin")
        if not header or not header.startswith("Bearer "):
            raise TokenRejected("no bearer token")
        token = header[len("Bearer ") :].strip()
        if token in self._revoked:
            raise TokenRejected("token revoked by admin")
        caller = self._cache.get(token)
        if caller is None:
            caller = self._verify(token)
            self.verified += 1
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = caller
        age = time.time() - caller.signed_at
        if age > self._config.token_max_age:
            raise TokenRejected(f"X-Amz-Date expired ({age:.0f}s old)")
        if caller.signed_at < self.revoked_before:
            raise TokenRejected("token signed before revocation")
        return caller

    def _verify(self, token: str) -> Caller:
        if not token.startswith(TOKEN_PREFIX):
            raise TokenRejected("token is missing expected 'k8s-aws-v1.' prefix")
        encoded = token[len(TOKEN_PREFIX) :]
        try:
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise TokenRejected("token is not base64url") from exc
        parts = urlsplit(url)
        if parts.scheme != "https" or not _HOST_RE.match(parts.netloc) or parts.path != "/":
            raise TokenRejected(
                f"unexpected presigned URL {parts.scheme}://{parts.netloc}{parts.path}"
            )
        raw_pairs = [p.partition("=") for p in parts.query.split("&") if p]
        params: dict[str, str] = {}
        for key, _, value in raw_pairs:
            lowered = unquote(key).lower()
            if lowered not in _ALLOWED_PARAMS or lowered in params:
                raise TokenRejected(f"unexpected or repeated query parameter {key!r}")
            params[lowered] = unquote(value)
        if params.get("action") != "GetCallerIdentity" or params.get("version") != "2011-06-15":
            raise TokenRejected("not a GetCallerIdentity 2011-06-15 request")
        signed = params.get("x-amz-signedheaders", "").split(";")
        if CLUSTER_ID_HEADER not in signed or set(signed) != {"host", CLUSTER_ID_HEADER}:
            raise TokenRejected("x-k8s-aws-id is not (only) what was signed besides host")
        signed_at = _parse_amz_date(params.get("x-amz-date", ""))
        if signed_at - time.time() > _FUTURE_SKEW:
            raise TokenRejected("X-Amz-Date is in the future")
        access_key, region = _parse_credential(params.get("x-amz-credential", ""))
        secret = self._secrets.get(access_key)
        if secret is None:
            raise TokenRejected(f"unknown access key {access_key}")
        unsigned_query = "&".join(
            f"{k}={v}" for k, _, v in raw_pairs if k.lower() != "x-amz-signature"
        )
        expected = self._signature(
            f"https://{parts.netloc}/?{unsigned_query}",
            params["x-amz-date"],
            access_key,
            secret,
            region,
        )
        if not hmac.compare_digest(expected, params.get("x-amz-signature", "")):
            raise TokenRejected("signature mismatch (wrong key or minted for another cluster)")
        return Caller(arn=self._config.caller_arn, signed_at=signed_at)

    def _signature(self, url: str, amz_date: str, access_key: str, secret: str, region: str) -> str:
        signer = SigV4QueryAuth(Credentials(access_key, secret), "sts", region)
        request = AWSRequest(method="GET", url=url, headers={CLUSTER_ID_HEADER: self._cluster})
        request.context["timestamp"] = amz_date
        canonical = signer.canonical_request(request)
        return str(signer.signature(signer.string_to_sign(request, canonical), request))


def _parse_amz_date(value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError as exc:
        raise TokenRejected(f"malformed X-Amz-Date {value!r}") from exc


def _parse_credential(value: str) -> tuple[str, str]:
    parts = value.split("/")
    if len(parts) != 5 or parts[3] != "sts" or parts[4] != "aws4_request":
        raise TokenRejected(f"malformed X-Amz-Credential {value!r}")
    return parts[0], parts[2]
