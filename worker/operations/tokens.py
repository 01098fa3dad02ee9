"""IAM bearer tokens for EKS, minted with botocore and cached per cluster.

EKS authenticates a request by replaying a presigned STS ``GetCallerIdentity`` URL
whose signed headers include ``x-k8s-aws-id: <cluster name>``; the token is that URL,
base64url-encoded, behind ``k8s-aws-v1.``. EKS accepts it for 15 minutes. Presigning
is local (no network), so minting is cheap, but there is no reason to do it per
request: :class:`TokenSource` keeps one token per cluster and re-mints it when it is
older than the refresh age, or when the API server rejected it (an unexpected 401).

Tokens and presigned URLs are secrets: nothing here logs them, only their length.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from worker import metrics

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# How long the presigned URL itself claims to be valid; EKS ignores it beyond 15 min.
_PRESIGN_EXPIRES_SECONDS = 60


def mint_token(sts_client: Any, cluster_name: str) -> str:
    """Return a fresh EKS bearer token for ``cluster_name`` signed by ``sts_client``.

    ``sts_client`` must be a botocore STS client; the cluster header is added to the
    request just before signing, so it is covered by the signature.
    """

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster_name

    event = "before-sign.sts.GetCallerIdentity"
    sts_client.meta.events.register(event, add_cluster_header)
    try:
        url = sts_client.generate_presigned_url(
            "get_caller_identity",
            Params={},
            ExpiresIn=_PRESIGN_EXPIRES_SECONDS,
            HttpMethod="GET",
        )
    finally:
        sts_client.meta.events.unregister(event, add_cluster_header)
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return TOKEN_PREFIX + encoded


class TokenSource:
    """One cluster's current token, re-minted before it ages out. Thread-safe."""

    def __init__(
        self,
        mint: Callable[[], str],
        *,
        refresh_after_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._mint = mint
        self._refresh_after = refresh_after_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._rejected: str | None = None
        self._minted_at = 0.0
        self.mint_count = 0

    def get(self) -> str:
        """Return a token younger than the refresh age, minting one if needed."""
        with self._lock:
            if self._token is None or self._clock() - self._minted_at >= self._refresh_after:
                self._token = self._fresh_token()
                self._minted_at = self._clock()
                logger.info("Generated IAM bearer token length=%d", len(self._token))
            return self._token

    def _fresh_token(self) -> str:
        token = self._mint()
        self.mint_count += 1
        metrics.TOKEN_MINTS.inc()
        if token == self._rejected:
            # Presigning is deterministic and X-Amz-Date has one-second resolution: a
            # re-mint within the second of the rejected token is that same token.
            self._sleep(1.0)
            token = self._mint()
            self.mint_count += 1
            metrics.TOKEN_MINTS.inc()
        return token

    def invalidate(self, rejected: str | None) -> None:
        """Forget ``rejected`` so the next :meth:`get` mints anew.

        Only the token that was actually rejected is dropped: when many threads see the
        same 401 at once, the first re-mints and the rest reuse its new token.
        """
        with self._lock:
            if rejected is None or rejected == self._token:
                self._rejected = self._token
                self._token = None
