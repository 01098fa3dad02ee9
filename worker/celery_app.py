"""The Celery application of the worker, and its process lifecycle hooks.

``celery -A worker worker`` finds :data:`app` here (through ``worker.app``). Hooks:
configuration is checked before the worker starts (one clear line and exit code 2 if
it is wrong), logging is configured once in the seed format, a startup banner shows
what the worker will talk to, and a forked pool child drops any runtime inherited
from its parent.
"""

from __future__ import annotations

import logging
import platform
import sys
from typing import Any

from celery import Celery, signals
from kombu.serialization import register as register_serializer
from pydantic import ValidationError

from celeryconfig import enable_signing
from worker import operations
from worker.logs import configure_logging, log_banner, safe_url
from worker.manifests import job_schema_validator
from worker.runtime import Runtime, reset_runtime, runtime
from worker.settings import (
    ConfigurationInvalid,
    QueueSettings,
    SharedSettings,
    describe_settings_error,
)

logger = logging.getLogger("worker.main")

VERSION = "0.1.0"

app = Celery("eksops", include=["worker.tasks"])
app.config_from_object("celeryconfig")


def _register_signing() -> ConfigurationInvalid | None:
    """Register the signing serializer now: Celery resolves accepted content types
    before any worker signal fires. A problem is kept for the one-line report below."""
    try:
        enable_signing(app, QueueSettings())
    except ValidationError:
        return None  # reported, with everything else, by _check_configuration
    except Exception as exc:  # unreadable key or certificate
        # Fail closed: an "auth" serializer that refuses everything lets startup reach
        # the one-line report, and no unsigned message could ever be accepted.
        register_serializer("auth", _refuse, _refuse, "application/data", "utf-8")
        return ConfigurationInvalid(f"message signing: {exc}")
    return None


def _refuse(_: Any) -> Any:
    raise ConfigurationInvalid("message signing is misconfigured")


_signing_problem = _register_signing()


@signals.celeryd_init.connect
def _check_configuration(**_: Any) -> None:
    try:
        if _signing_problem is not None:
            raise _signing_problem
        reset_runtime(Runtime.load())
    except (ValidationError, ConfigurationInvalid) as exc:
        sys.stderr.write(f"eksops worker: invalid configuration: {describe_settings_error(exc)}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    try:
        shared = SharedSettings()
    except ValidationError:
        shared = SharedSettings.model_construct()
    configure_logging(shared.log_level, shared.log_format)


@signals.worker_init.connect
def _banner(**_: Any) -> None:
    current = runtime()
    settings, queue = current.settings, current.queue
    log_banner(
        logger,
        "eksops worker - Startup",
        [
            f"Python version: {platform.python_version()}",
            f"Application version: {VERSION}",
            "Configuration loaded successfully:",
            f"  - Cluster access: {settings.mode}",
            f"  - EKS Cluster: {settings.cluster_label}",
            f"  - AWS Region: {settings.eks_region or '-'}",
            f"  - Broker: {safe_url(queue.broker_url)}",
            f"  - Result backend: {safe_url(queue.result_backend)}",
            f"  - Pool: {queue.worker_pool} x {queue.worker_concurrency}",
            f"  - Log Level: {settings.log_level}",
        ],
    )


@signals.worker_init.connect
@signals.worker_process_init.connect
def _warm_up(**_: Any) -> None:
    operations.warm_up()
    job_schema_validator()


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    logger.info("Worker startup completed successfully; ready to accept tasks")


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    reset_runtime()
