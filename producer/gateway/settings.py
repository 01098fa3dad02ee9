"""Settings of the HTTP gateway, read from the environment (``.env`` honoured).

The gateway is a producer, so it extends :class:`producer.settings.ProducerSettings`
(logging, request limits, how long callers may wait) with what only an HTTP front door needs: API
keys, a body size limit, how long ``?wait`` may hold a request, and how often health
checks may ask the broker about workers. Variables are prefixed ``GATEWAY_``; the
broker and result backend come from :class:`worker.settings.QueueSettings` as in every
process. :func:`load_settings` fails fast with one line naming what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from producer.gateway.keyring import Keyring
from producer.settings import ProducerSettings
from worker.settings import QueueSettings
from worker.validation import CommaList, validate_settings

# Values that show a key was copied from an example rather than generated.
PLACEHOLDER_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "apikey",
        "api-key",
        "api_key",
        "example",
        "test",
        "xxx",
        "todo",
    }
)
MIN_KEY_LENGTH = 16


class GatewaySettings(ProducerSettings):
    """What the gateway adds to a producer: authentication, limits, waiting, health."""

    # Comma-separated; empty disables authentication (every endpoint open).
    gateway_api_keys: Annotated[tuple[SecretStr, ...], NoDecode, CommaList] = ()
    # YAML of tenants: key hashes, scope, quotas, Job policy (producer.gateway.keyring).
    gateway_keys_file: Path | None = None
    # Largest request body accepted, in bytes (checked before the body is read).
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Largest body of POST /api/eks-create-jobs, and the most jobs it may carry.
    gateway_max_bulk_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    gateway_max_bulk_items: int = Field(default=50_000, ge=1, le=1_000_000)
    # Upper bound of ``?wait=SECONDS``; a longer wait is cut to this.
    gateway_wait_max_seconds: float = Field(default=60.0, gt=0, le=3600)
    # How long the seed's five endpoints wait for the outcome when the caller sends no
    # ``?wait``: with it set, clients of the synchronous API get its answers unchanged
    # (a 202 only when the wait runs out). 0, the default: answer 202 at once.
    gateway_default_wait_seconds: float = Field(default=0.0, ge=0, le=3600)
    # ``?wait`` requests waiting at once; beyond this a request answers 202 at once.
    gateway_max_waiting: int = Field(default=1000, ge=1, le=100_000)
    # ``GET /api/events`` streams open at once; beyond this a stream answers 503.
    gateway_max_event_streams: int = Field(default=500, ge=1, le=100_000)
    # How long the live-worker count of /health is reused before asking the broker again.
    gateway_health_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Time a worker ping (and the Redis check of /health) may take.
    gateway_health_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    # Socket timeouts of the gateway's Redis connections, so nothing hangs on a dead Redis.
    gateway_redis_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # Shown by /health as the seed did; the workers' cluster (the gateway never calls it).
    eks_cluster_name: str | None = None
    eks_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EKS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )

    @field_validator("gateway_api_keys")
    @classmethod
    def _reject_weak_keys(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for position, key in enumerate(keys, start=1):
            secret = key.get_secret_value()
            if secret.lower() in PLACEHOLDER_KEYS:
                raise ValueError(
                    f"key #{position} is a placeholder; generate one, e.g. with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
            if len(secret) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"key #{position} is {len(secret)} characters; use at least {MIN_KEY_LENGTH}"
                )
        return keys

    @property
    def api_keys(self) -> tuple[bytes, ...]:
        """Return the configured keys as bytes, ready for a constant-time compare."""
        return tuple(key.get_secret_value().encode() for key in self.gateway_api_keys)


def load_settings() -> tuple[GatewaySettings, QueueSettings]:
    """Return the gateway's settings, or raise ConfigurationInvalid with one line.

    A bad API key is named by its position, never quoted; a bad keys file by its path
    and the problem.
    """
    settings = validate_settings(GatewaySettings)
    Keyring(api_keys=settings.api_keys, keys_file=settings.gateway_keys_file)
    queue = validate_settings(QueueSettings)
    queue.require_urls()
    return settings, queue
