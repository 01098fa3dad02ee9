"""The Celery application of the worker, and its process lifecycle hooks.

``celery -A worker worker`` finds :data:`app` here (through ``worker.app``). Hooks:
the settings are read once, when the worker starts (one clear line and exit code 2 if
they are wrong), logging is configured once in the seed format, a startup banner shows
what the worker will talk to, and each process (a forked pool child included) builds
its :class:`~worker.engine.Engine` with the dependencies it needs and its observers
(metrics, and the task events of chunk items for Flower). When ready, the worker
announces itself as live (``worker.presence``) and, with ``WORKER_METRICS_PORT``, serves
its metrics (``worker.exposition``). Tasks reach the engine through :func:`engine`;
everything below it receives its dependencies.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
from typing import Any

from celery import Celery, signals
from kombu.serialization import register as register_serializer

import celeryconfig
from worker import exposition, operations, preflight, presence
from worker.callbacks import Sender, SenderSettings
from worker.delivery.config import enable_signing
from worker.engine import Engine, Observer, Observers
from worker.errors import ConfigurationInvalid
from worker.logs import configure_logging, log_banner, safe_url
from worker.manifests import job_schema_validator
from worker.metering import Metering
from worker.runtime import Runtime
from worker.settings import QueueSettings, SharedSettings, WorkerSettings
from worker.taskevents import TaskEvents
from worker.tracking.supervisor import Supervisor
from worker.validation import validate_settings

logger = logging.getLogger("worker.main")

VERSION = "0.1.0"

app = Celery("eksops", include=["worker.tasks"])
app.config_from_object("celeryconfig:CONFIG")
# Single requests run on threads that take them (worker/runners.py), beside the pool.
app.steps["worker"].add("worker.runners:Runners")


class _Process:
    """This process's settings and engine: read and built once, rebuilt after a fork."""

    lock = threading.Lock()
    settings: WorkerSettings | None = None
    queue: QueueSettings | None = None
    engine: Engine | None = None
    pid: int | None = None
    hostname: str | None = None  # the worker's node name, once Celery has set it up


def queue_settings() -> QueueSettings:
    """Return the broker and pool settings, read once per process (the ones Celery uses)."""
    with _Process.lock:
        if _Process.queue is None:
            _Process.queue = celeryconfig.CONFIG.queue
        return _Process.queue


def load_settings() -> tuple[WorkerSettings, QueueSettings]:
    """Return the worker's settings, read from the environment once per process."""
    queue = queue_settings()
    with _Process.lock:
        if _Process.settings is None:
            queue.require_urls()
            _Process.settings = validate_settings(WorkerSettings)
        return _Process.settings, queue


def engine() -> Engine:
    """Return this process's engine, built on first use (after any fork)."""
    current = _Process.engine
    if current is not None and _Process.pid == os.getpid():
        return current
    settings, queue = load_settings()
    with _Process.lock:
        if _Process.engine is None or _Process.pid != os.getpid():
            runtime = Runtime.build(settings, queue, backend=lambda: app.backend)
            observers: list[Observer] = [Metering()]
            if queue.worker_send_task_events:
                observers.append(TaskEvents(app, hostname=lambda: _Process.hostname))
            _Process.engine = Engine(runtime, Observers(*observers))
            _Process.pid = os.getpid()
        return _Process.engine


_signing_problem: list[ConfigurationInvalid] = []


@app.on_after_configure.connect(weak=False)
def _register_signing(**_: Any) -> None:
    """Register the signing serializer as soon as the configuration is read: Celery
    resolves accepted content types before any worker signal fires. A problem is kept
    for the one-line report of :func:`_check_configuration`."""
    try:
        enable_signing(app, queue_settings())
    except ConfigurationInvalid:
        pass  # reported, with everything else, by _check_configuration
    except Exception as exc:  # unreadable key or certificate
        # Fail closed: an "auth" serializer that refuses everything lets startup reach
        # the one-line report, and no unsigned message could ever be accepted.
        register_serializer("auth", _refuse, _refuse, "application/data", "utf-8")
        _signing_problem.append(ConfigurationInvalid(f"message signing: {exc}"))


def _refuse(_: Any) -> Any:
    raise ConfigurationInvalid("message signing is misconfigured")


@signals.celeryd_init.connect
def _check_configuration(**_: Any) -> None:
    try:
        if _signing_problem:
            raise _signing_problem[0]
        load_settings()
        engine()
    except ConfigurationInvalid as exc:
        sys.stderr.write(f"eksops worker: invalid configuration: {exc.message}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    try:
        shared: SharedSettings = load_settings()[0]
    except ConfigurationInvalid:
        # The start-up check reports it in one line; until then, log as it says.
        shared = SharedSettings.model_construct()
    configure_logging(shared.log_level, shared.log_format)


@signals.worker_init.connect
def _banner(**_: Any) -> None:
    settings, queue = load_settings()
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
            f"  - Interactive runners: {queue.interactive_runners}",
            f"  - Log Level: {settings.log_level}",
        ],
    )


_preflight_stop = threading.Event()


@signals.worker_init.connect
def _preflight(**_: Any) -> None:
    """Check the cluster before consuming; refuse to start on failure when strict."""
    settings, _queue = load_settings()
    if settings.worker_preflight == "off":
        return
    results = preflight.check(engine().runtime)
    problem = preflight.refused(results)
    if problem is not None and settings.worker_preflight == "strict":
        sys.stderr.write(f"eksops worker: refusing to start (WORKER_PREFLIGHT=strict): {problem}\n")
        sys.stderr.flush()
        raise SystemExit(2)


@signals.worker_ready.connect
def _keep_checking(**_: Any) -> None:
    settings, _queue = load_settings()
    if settings.worker_preflight != "off":
        preflight.keep_checking(engine().runtime, _preflight_stop)


@signals.celeryd_after_setup.connect
def _remember_hostname(sender: str, **_: Any) -> None:
    _Process.hostname = sender


_background: list[Supervisor | Sender | presence.Announcer | exposition.Endpoint] = []


@signals.worker_ready.connect
def _start_background(**_: Any) -> None:
    """Compete for the clusters' tracker leases; send callbacks from the outbox."""
    settings, _queue = load_settings()
    runtime = engine().runtime
    if _Process.hostname is not None:
        _background.append(presence.Announcer(runtime.redis, _Process.hostname))
    if settings.worker_metrics_port is not None:
        _background.append(
            exposition.Endpoint(settings.worker_metrics_port, settings.worker_metrics_address)
        )
    if settings.job_tracking:
        _background.append(Supervisor(runtime))
    key = settings.callback_signing_key
    _background.append(
        Sender(
            runtime.redis,
            SenderSettings(
                signing_key=key.get_secret_value().encode() if key else None,
                allowed_hosts=settings.callback_allowed_hosts,
                max_attempts=settings.callback_max_attempts,
                read_timeout_seconds=settings.callback_timeout_seconds,
                backoff_seconds=settings.callback_backoff_seconds,
            ),
        )
    )
    for service in _background:
        service.start()


@signals.worker_shutdown.connect
def _stop_background(**_: Any) -> None:
    _preflight_stop.set()
    for service in _background:
        service.stop()


@signals.worker_init.connect
def _fresh_metrics(**_: Any) -> None:
    exposition.forget_earlier_runs()


@signals.worker_process_shutdown.connect
def _child_exited(pid: int, **_: Any) -> None:
    exposition.child_exited(pid)


@signals.worker_init.connect
@signals.worker_process_init.connect
def _warm_up(**_: Any) -> None:
    operations.warm_up()
    job_schema_validator()


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    logger.info("Worker startup completed successfully; ready to accept tasks")
