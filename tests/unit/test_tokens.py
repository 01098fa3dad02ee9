"""EKS bearer tokens: minted like EKS expects, cached, re-minted on age or rejection."""

from __future__ import annotations

import base64
import threading
import urllib.parse

import boto3
import pytest

from worker.operations.tokens import TOKEN_PREFIX, TokenSource, mint_token


@pytest.fixture
def sts() -> object:
    session = boto3.session.Session(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    return session.client("sts")


def decode(token: str) -> urllib.parse.ParseResult:
    assert token.startswith(TOKEN_PREFIX)
    encoded = token.removeprefix(TOKEN_PREFIX)
    return urllib.parse.urlparse(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    )


def test_a_token_is_a_presigned_get_caller_identity_url_signing_the_cluster_header(
    sts: object,
) -> None:
    url = decode(mint_token(sts, "prod-eu"))
    query = urllib.parse.parse_qs(url.query)
    assert url.scheme == "https"
    assert url.hostname in {"sts.eu-west-1.amazonaws.com", "sts.amazonaws.com"}
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["Version"] == ["2011-06-15"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "X-Amz-Signature" in query


def test_tokens_for_different_clusters_differ(sts: object) -> None:
    assert mint_token(sts, "a") != mint_token(sts, "b")


def test_a_token_is_reused_until_the_refresh_age() -> None:
    now = [0.0]
    minted: list[str] = []

    def mint() -> str:
        minted.append(f"t{len(minted)}")
        return minted[-1]

    source = TokenSource(mint, refresh_after_seconds=840, clock=lambda: now[0])
    assert source.get() == "t0"
    now[0] = 839.0
    assert source.get() == "t0"
    now[0] = 840.0
    assert source.get() == "t1"
    assert source.mint_count == 2


def test_invalidating_the_rejected_token_forces_one_new_mint() -> None:
    counter = iter(range(100))
    source = TokenSource(lambda: f"t{next(counter)}", refresh_after_seconds=840)
    first = source.get()
    source.invalidate(first)
    second = source.get()
    assert second != first
    # A late 401 for the old token must not throw away the new one.
    source.invalidate(first)
    assert source.get() == second


def test_concurrent_callers_share_one_mint() -> None:
    barrier = threading.Barrier(16)
    source = TokenSource(lambda: "token", refresh_after_seconds=840)

    def call() -> None:
        barrier.wait()
        source.get()

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.mint_count == 1


def test_a_remint_never_returns_the_token_that_was_just_rejected() -> None:
    second = [0]
    slept: list[float] = []
    source = TokenSource(
        lambda: f"signed-at-{second[0]}",
        refresh_after_seconds=840,
        sleep=lambda s: (slept.append(s), second.__setitem__(0, second[0] + 1)),
    )
    rejected = source.get()
    source.invalidate(rejected)
    assert source.get() == "signed-at-1"
    assert slept == [1.0]
