"""Gateway settings come from GATEWAY_* variables; bad ones stop it with one clear line."""

from __future__ import annotations

import pytest

from producer.gateway.settings import GatewaySettings, load_settings
from worker.settings import ConfigurationInvalid

REDIS = "redis://127.0.0.1:6379/0"


def test_defaults_are_documented_values() -> None:
    settings = GatewaySettings()
    assert settings.api_keys == ()
    assert settings.gateway_max_body_bytes == 1024 * 1024
    assert settings.gateway_wait_max_seconds == 60
    assert settings.gateway_max_waiting == 1000
    assert settings.gateway_health_cache_seconds == 5


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("GATEWAY_API_KEYS", " first-key-0123456789 , second-key-0123456789 ")
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("GATEWAY_WAIT_MAX_SECONDS", "15")
    monkeypatch.setenv("EKS_CLUSTER_NAME", "my-cluster")
    monkeypatch.setenv("EKS_REGION", "us-east-1")
    settings, queue = load_settings()
    assert settings.api_keys == (b"first-key-0123456789", b"second-key-0123456789")
    assert settings.gateway_max_body_bytes == 65536
    assert settings.gateway_wait_max_seconds == 15
    assert (settings.eks_cluster_name, settings.eks_region) == ("my-cluster", "us-east-1")
    assert queue.broker_url == REDIS


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("changeme", "key #1 is a placeholder"),
        ("a-real-looking-key-123456,CHANGEME", "key #2 is a placeholder"),
        ("short", "key #1 is 5 characters; use at least 16"),
    ],
)
def test_placeholder_or_short_keys_stop_the_gateway_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, keys: str, problem: str
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("GATEWAY_API_KEYS", keys)
    with pytest.raises(ConfigurationInvalid) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("GATEWAY_API_KEYS: ")
    assert problem in message
    assert "\n" not in message
    for key in keys.split(","):
        assert key not in message


def test_a_missing_redis_url_says_what_to_set() -> None:
    with pytest.raises(ConfigurationInvalid, match="set REDIS_URL"):
        load_settings()


def test_a_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("GATEWAY_WAIT_MAX_SECONDS", "0")
    with pytest.raises(ConfigurationInvalid, match="GATEWAY_WAIT_MAX_SECONDS: Input should be"):
        load_settings()
