"""Settings of eksops processes, read from the environment (``.env`` honoured).

One pydantic-settings class per process kind: :class:`QueueSettings` (broker, results,
worker pool; read by ``celeryconfig.py`` in every process), :class:`SharedSettings`
(logging and request limits, shared by producers and workers) and
:class:`WorkerSettings` (cluster access). Bad values fail at start: build them with
:func:`worker.validation.validate_settings`, which raises
:class:`~worker.errors.ConfigurationInvalid` with the one line an operator reads. Each
process reads them once, at its entry point, never at import. Pure: no cluster
clients, no Celery.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.contracts import Limits
from worker.errors import ConfigurationInvalid
from worker.manifests import DEFAULT_MAX_MANIFEST_BYTES
from worker.validation import CommaList

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "valkey://", "valkeys://", "sentinel://")
# EKS bearer tokens are accepted for 15 minutes; re-mint comfortably before that.
TOKEN_LIFETIME_SECONDS = 900


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)


class QueueSettings(_Settings):
    """Broker, result backend and worker pool (every process; see celeryconfig.py)."""

    redis_url: str | None = None
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    # With sentinel:// URLs (Redis Sentinel): the monitored master's name, and the
    # sentinels' own password if they require one (the master's is in the URL).
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = None
    worker_concurrency: int = Field(default=8, ge=1, le=512)
    worker_prefetch_multiplier: int = Field(default=1, ge=1, le=64)
    # The share of each worker's threads that bulk messages may never take, so single
    # requests find a thread free during a burst (at least one thread takes bulk work).
    worker_interactive_share: float = Field(default=0.25, ge=0.0, lt=1.0)
    worker_pool: Literal["threads", "prefork", "solo", "gevent", "eventlet"] = "threads"
    # Threads of their own that take single requests and run them at once, beside the
    # pool (threads pool only; see worker/runners.py). Unset: the interactive share of
    # the pool's threads, at least one; 0 turns them off.
    worker_interactive_runners: int | None = Field(default=None, ge=0, le=64)
    # Must exceed the longest task plus the longest retry countdown, or Redis redelivers
    # a message that is still being worked on.
    visibility_timeout_seconds: int = Field(default=600, ge=3)
    result_expires_seconds: int = Field(default=86_400, ge=60)
    # Task events feed Flower's live view; about 15% of a worker's CPU per task.
    worker_send_task_events: bool = True
    # Message signing (Celery's "auth" serializer): all three, or none.
    message_signing_key: Path | None = None
    message_signing_certificate: Path | None = None
    message_signing_cert_store: str | None = None

    @property
    def interactive_runners(self) -> int:
        """How many interactive runners each worker process starts (threads pool only)."""
        if self.worker_pool != "threads":
            return 0
        if self.worker_interactive_runners is not None:
            return self.worker_interactive_runners
        if self.worker_interactive_share <= 0:
            return 0
        return max(1, math.ceil(self.worker_concurrency * self.worker_interactive_share))

    @model_validator(mode="after")
    def _signing_all_or_nothing(self) -> Self:
        parts = (
            self.message_signing_key,
            self.message_signing_certificate,
            self.message_signing_cert_store,
        )
        if any(parts) and not all(parts):
            raise ValueError(
                "message signing needs MESSAGE_SIGNING_KEY, MESSAGE_SIGNING_CERTIFICATE and "
                "MESSAGE_SIGNING_CERT_STORE together"
            )
        for path in parts[:2]:
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a file")
        return self

    # The gateway's keys file: with signing on, workers check a tenant's scope and Job
    # policy again before any API call (``worker.keysfile``).
    gateway_keys_file: Path | None = None

    @property
    def signing(self) -> bool:
        """Return whether task messages are signed and only signed ones accepted."""
        return self.message_signing_key is not None

    @property
    def broker_url(self) -> str | None:
        """Return the broker URL: ``CELERY_BROKER_URL``, else ``REDIS_URL``."""
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend(self) -> str | None:
        """Return the result backend URL: ``CELERY_RESULT_BACKEND``, else ``REDIS_URL``."""
        return self.celery_result_backend or self.redis_url

    @property
    def sentinel(self) -> bool:
        """Return whether Redis is reached through Sentinel (``sentinel://`` URLs)."""
        return any(
            url is not None and url.startswith("sentinel://")
            for url in (self.broker_url, self.result_backend)
        )

    def require_urls(self) -> None:
        """Raise :class:`ConfigurationInvalid` unless broker and results are configured."""
        for url, names in (
            (self.broker_url, "REDIS_URL (or CELERY_BROKER_URL)"),
            (self.result_backend, "REDIS_URL (or CELERY_RESULT_BACKEND)"),
        ):
            if not url:
                raise ConfigurationInvalid(f"set {names}, e.g. redis://127.0.0.1:6379/0")
            if not url.startswith(REDIS_SCHEMES):
                raise ConfigurationInvalid(
                    f"{names} must be a redis://, rediss:// or sentinel:// URL, not {url!r}"
                )
        if self.sentinel and not self.redis_sentinel_master:
            raise ConfigurationInvalid(
                "REDIS_SENTINEL_MASTER is not set: with sentinel:// URLs, set it to the name "
                "the sentinels monitor the master by (sentinel monitor <name> ...)"
            )


class SharedSettings(_Settings):
    """Logging and request limits, the same in producers and workers."""

    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    max_manifest_bytes: int = Field(default=DEFAULT_MAX_MANIFEST_BYTES, ge=1024, le=3 * 1024 * 1024)
    protected_namespaces: Annotated[tuple[str, ...], NoDecode, CommaList] = Field(
        default=(),
        validation_alias=AliasChoices("EKSOPS_PROTECTED_NAMESPACES", "protected_namespaces"),
    )
    # The hosts a submission's callback_url may name (globs such as *.example.com; empty:
    # any): producers refuse others at submission, workers before sending.
    callback_allowed_hosts: Annotated[tuple[str, ...], NoDecode, CommaList] = ()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def limits(self) -> Limits:
        """Return the validation limits producers and workers both apply."""
        return Limits(
            max_manifest_bytes=self.max_manifest_bytes,
            protected_namespaces=self.protected_namespaces,
        )


class WorkerSettings(SharedSettings):
    """How a worker reaches its cluster: EKS by name and region, or a kubeconfig."""

    eks_cluster_name: str | None = None
    eks_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EKS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    kubeconfig: Path | None = None
    kube_context: str | None = None
    token_refresh_seconds: int = Field(default=840, ge=1, lt=TOKEN_LIFETIME_SECONDS)
    k8s_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    k8s_read_timeout_seconds: float = Field(default=30.0, gt=0)
    k8s_rate_limit_qps: float = Field(default=50.0, ge=0)
    k8s_rate_limit_burst: int = Field(default=100, ge=1)
    k8s_max_in_flight: int = Field(default=32, ge=0)
    # The share of the cluster's API budget (tokens and in-flight slots) that bulk work
    # never takes: single requests are served from it during a burst.
    k8s_interactive_share: float = Field(default=0.25, ge=0.0, lt=1.0)
    # How long a killed worker's claim on a request outlives it (renewed while alive).
    lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    retry_max_attempts: int = Field(default=5, ge=1, le=50)
    retry_backoff_seconds: float = Field(default=1.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=60.0, gt=0)
    # The start-up check of cluster access: off, warn (log each failed step), or strict
    # (refuse to start); repeated every interval so /health stays current.
    worker_preflight: Literal["off", "warn", "strict"] = "warn"
    worker_preflight_interval_seconds: float = Field(default=300.0, ge=10.0)
    # The job tracker (one per cluster in the fleet): on or off in this worker, how long
    # a dead holder's lease outlives it, how long one watch request lasts, and how much
    # of a failed container's log is kept.
    job_tracking: bool = True
    tracker_lease_seconds: float = Field(default=5.0, ge=1.0, le=300.0)
    tracker_watch_timeout_seconds: int = Field(default=240, ge=5, le=3600)
    job_log_tail_lines: int = Field(default=50, ge=1, le=10_000)
    job_log_tail_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    # Prometheus metrics of this worker process at http://<address>:<port>/metrics (off
    # without a port); see worker/exposition.py for several processes on one host.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_address: str = "0.0.0.0"  # noqa: S104 - scraped from other hosts
    # Callbacks (callback_url of a submission): the HMAC key that signs them (required to
    # send any), how often and how long one is tried.
    callback_signing_key: SecretStr | None = None
    callback_max_attempts: int = Field(default=8, ge=1, le=50)
    callback_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    callback_backoff_seconds: float = Field(default=2.0, gt=0, le=600)

    @field_validator("callback_signing_key")
    @classmethod
    def _strong_callback_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError(
                "use at least 16 characters (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return key

    @model_validator(mode="after")
    def _one_cluster_source(self) -> Self:
        if not self.eks_cluster_name and not self.kubeconfig:
            raise ValueError(
                "EKS_CLUSTER_NAME is not set: set it to the EKS cluster to operate on "
                "(or set KUBECONFIG for kind, k3s or minikube)"
            )
        if self.eks_cluster_name and not self.eks_region:
            raise ValueError(
                "EKS_REGION is not set: set it to the cluster's AWS region, e.g. us-east-1"
            )
        if self.kubeconfig and not self.eks_cluster_name and not self.kubeconfig.is_file():
            raise ValueError(f"KUBECONFIG points to {self.kubeconfig}, which is not a file")
        return self

    @property
    def mode(self) -> Literal["eks", "kubeconfig"]:
        """Return how clusters are reached; EKS wins when both are configured."""
        return "eks" if self.eks_cluster_name else "kubeconfig"

    @property
    def cluster_label(self) -> str:
        """Return the cluster name to show in banners and health output."""
        if self.mode == "eks":
            return str(self.eks_cluster_name)
        return self.kube_context or f"kubeconfig:{self.kubeconfig}"


def env_file_present() -> bool:
    """Return whether a ``.env`` file is being honoured from the working directory."""
    return Path(os.getcwd(), ".env").is_file()
