"""EKS-style bearer tokens: what is accepted, and the exact 401 for what is not."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from kubernetes import client as k8s

from kubesim import AdminClient, Simulator
from kubesim.testing import mint_token

from .conftest import api_error

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
CoreFactory = Callable[[str | None], k8s.CoreV1Api]


def _rewrite_url(token: str, old: str, new: str) -> str:
    encoded = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    rewritten = base64.urlsafe_b64encode(url.replace(old, new).encode()).decode().rstrip("=")
    return "k8s-aws-v1." + rewritten


def test_a_token_minted_for_this_cluster_is_accepted(
    sim: Simulator, make_core: CoreFactory
) -> None:
    core = make_core(f"Bearer {mint_token(sim.cluster)}")

    assert core.read_namespace("default").metadata.name == "default"


def test_a_token_from_the_global_sts_endpoint_is_accepted(
    sim: Simulator, make_core: CoreFactory
) -> None:
    token = mint_token(sim.cluster, region="aws-global")
    core = make_core(f"Bearer {token}")

    assert core.read_namespace("default").metadata.name == "default"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer k8s-aws-v1.!!!not-base64!!!",
        "Bearer k8s-aws-v1." + base64.urlsafe_b64encode(b"https://example.com/").decode(),
        "Basic dXNlcjpwYXNz",
    ],
    ids=["no-prefix", "not-base64", "not-sts", "not-bearer"],
)
def test_malformed_tokens_get_the_unauthorized_status(
    make_core: CoreFactory, authorization: str
) -> None:
    status, body, _ = api_error(lambda: make_core(authorization).list_namespace())

    assert status == 401
    assert body == UNAUTHORIZED


def test_a_token_minted_for_another_cluster_is_unauthorized(make_core: CoreFactory) -> None:
    core = make_core(f"Bearer {mint_token('some-other-cluster')}")

    status, body, _ = api_error(core.list_namespace)

    assert (status, body) == (401, UNAUTHORIZED)


def test_a_token_signed_with_the_wrong_secret_is_unauthorized(
    sim: Simulator, make_core: CoreFactory
) -> None:
    token = mint_token(sim.cluster, secret="wrong-secret")

    status, body, _ = api_error(make_core(f"Bearer {token}").list_namespace)

    assert (status, body) == (401, UNAUTHORIZED)


def test_a_presigned_url_for_a_non_sts_host_is_unauthorized(
    sim: Simulator, make_core: CoreFactory
) -> None:
    token = _rewrite_url(
        mint_token(sim.cluster), "sts.us-east-1.amazonaws.com", "sts.evil.example.com"
    )

    status, _, _ = api_error(make_core(f"Bearer {token}").list_namespace)

    assert status == 401


def test_a_presigned_url_for_another_action_is_unauthorized(
    sim: Simulator, make_core: CoreFactory
) -> None:
    token = _rewrite_url(mint_token(sim.cluster), "GetCallerIdentity", "GetSessionToken")

    status, _, _ = api_error(make_core(f"Bearer {token}").list_namespace)

    assert status == 401


def test_tokens_older_than_the_max_age_are_unauthorized(
    sim: Simulator, admin: AdminClient, make_core: CoreFactory
) -> None:
    core = make_core(f"Bearer {mint_token(sim.cluster)}")
    core.list_namespace()

    admin.configure(token_max_age=0)
    status, body, _ = api_error(core.list_namespace)

    assert (status, body) == (401, UNAUTHORIZED)


def test_revoking_tokens_rejects_old_ones_and_accepts_freshly_minted_ones(
    sim: Simulator, admin: AdminClient, make_core: CoreFactory
) -> None:
    old = make_core(f"Bearer {mint_token(sim.cluster)}")
    old.list_namespace()

    admin.revoke_tokens()
    status, _, _ = api_error(old.list_namespace)
    time.sleep(1.0 - time.time() % 1.0)  # X-Amz-Date has whole seconds: mint in a later one
    fresh = make_core(f"Bearer {mint_token(sim.cluster)}")

    assert status == 401
    assert fresh.list_namespace().items


def test_reject_all_tokens_makes_every_request_unauthorized_until_lifted(
    sim: Simulator, admin: AdminClient, make_core: CoreFactory
) -> None:
    core = make_core(f"Bearer {mint_token(sim.cluster)}")

    admin.reject_all_tokens()
    status, body, _ = api_error(core.list_namespace)
    admin.reject_all_tokens(False)

    assert (status, body) == (401, UNAUTHORIZED)
    assert core.list_namespace().items


def test_anonymous_requests_may_read_version_but_nothing_else(
    sim: Simulator, make_core: CoreFactory
) -> None:
    core = make_core(None)
    version = k8s.VersionApi(core.api_client).get_code()

    status, body, _ = api_error(core.list_namespace)

    assert version.git_version.startswith("v1.31.")
    assert status == 403
    assert body["message"] == (
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" '
        'in API group "" at the cluster scope'
    )
