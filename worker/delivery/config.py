"""Celery configuration of eksops, every value from the settings.

The worker's app loads it lazily (``celeryconfig.CONFIG``, read on first use of
``app.conf``, never at import); producers build theirs with ``role="producer"``; so
both sides agree on serialisation, queue and result handling. Why each setting:

* JSON only, in and out: a pickle payload on the queue is refused, never executed.
  With ``MESSAGE_SIGNING_*`` set, task messages must also be signed (Celery's "auth"
  serializer over JSON) by a certificate in the trusted store; results stay JSON.
* Late acks + reject on worker lost: a message is removed only after its task has
  finished, so a killed worker's task is redelivered rather than lost. Operations are
  idempotent per request ID, which makes the redelivery safe.
* Prefetch multiplier 1: tasks wait on the Kubernetes API; a worker should not hoard
  messages other workers could run.
* Visibility timeout above the longest task plus retry countdown, or Redis would hand
  a running task to a second worker.
* Results carry state, outcome and completion time; the operation, submission time and
  attempts are in eksops's own request record (see ``worker.records``), and
  ``started`` is recorded by the task base class itself (see ``worker.task_base``).
* Task events (``WORKER_SEND_TASK_EVENTS``, on by default) feed Flower; a fleet that
  does not watch Flower can save their cost.
* Threads pool because the work is I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from worker.contracts import QUEUE
from worker.settings import QueueSettings
from worker.validation import validate_settings


def celery_settings(queue: QueueSettings, *, role: str = "worker") -> dict[str, Any]:
    """Return the Celery configuration for ``queue`` (broker, backend, pool).

    ``role="producer"`` turns off retrying result-backend reads: a worker must keep
    trying to store a result until Redis is back, but a caller polling a status
    should hear at once that Redis is unreachable.
    """
    settings: dict[str, Any] = {
        "broker_url": queue.broker_url,
        "result_backend": queue.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_send_sent_event": True,
        "worker_send_task_events": queue.worker_send_task_events,
        "worker_pool": queue.worker_pool,
        "worker_concurrency": queue.worker_concurrency,
        "worker_prefetch_multiplier": queue.worker_prefetch_multiplier,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_enable_remote_control": True,
        # Task events published in batches (worker.taskevents.Consumer).
        "worker_consumer": "worker.taskevents:Consumer",
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": {
            "visibility_timeout": queue.visibility_timeout_seconds,
            # Look for abandoned messages every tenth of the timeout (at most every 10 s),
            # on every sweep: kombu's default looks only every ~100 s, which would add
            # up to that much to the recovery of a crashed worker's tasks.
            "unacked_restore_interval": max(1, min(10, queue.visibility_timeout_seconds // 10)),
            "unacked_restore_throttle": 1,
            # One list per queue: eksops sets no message priorities, and a worker takes
            # messages atomically from the queue only when it waits on a single list
            # (see worker/transport.py); kombu's default spreads a queue over four.
            "priority_steps": [0],
            "interactive_share": queue.worker_interactive_share,
            "socket_keepalive": True,
            "health_check_interval": 10,
            # redis-py 6 and later retry a timed-out command by default.
        },
        "result_expires": queue.result_expires_seconds,
        # Off: results would store every manifest again; the request record already
        # names the operation, and Flower shows arguments from task events.
        "result_extended": False,
        "result_backend_always_retry": role == "worker",
        # Workers consume through a transport that survives stray items on the queue.
        **({"broker_transport": "worker.delivery.transport:Transport"} if role == "worker" else {}),
        "result_backend_max_retries": 30,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 5_000,
        "redis_backend_health_check_interval": 10,
        "redis_socket_keepalive": True,
    }
    _use_sentinel(settings, queue, role)
    settings.update(_signing(queue))
    return settings


def _use_sentinel(settings: dict[str, Any], queue: QueueSettings, role: str) -> None:
    """Sentinel: kombu's and Celery's Sentinel transport and backend find the master.

    The worker's transport is eksops's own on top of kombu's Sentinel channel, so the
    inbox, the claim and the sweep keep every delivery guarantee on the current master.
    """
    if not queue.sentinel:
        return
    password = queue.redis_sentinel_password
    options: dict[str, Any] = {"master_name": queue.redis_sentinel_master}
    if password is not None:
        options["sentinel_kwargs"] = {"password": password.get_secret_value()}
    if str(queue.broker_url).startswith("sentinel://"):
        settings["broker_transport_options"].update(options)
        if role == "worker":
            settings["broker_transport"] = "worker.delivery.transport:SentinelTransport"
    if str(queue.result_backend).startswith("sentinel://"):
        settings["result_backend_transport_options"] = dict(options)


def _signing(queue: QueueSettings) -> dict[str, Any]:
    """Signed messages only, when a key is configured (results stay plain JSON)."""
    if not queue.signing:
        return {}
    return {
        "task_serializer": "auth",
        "accept_content": ["auth"],
        "security_key": str(queue.message_signing_key),
        "security_certificate": str(queue.message_signing_certificate),
        "security_cert_store": queue.message_signing_cert_store,
        "security_digest": "sha256",
    }


def enable_signing(app: Any, queue: QueueSettings) -> None:
    """Register the signing serializer in this process when signing is configured."""
    if queue.signing:
        app.setup_security(allowed_serializers=["json"], serializer="json")


class FromEnvironment(Mapping[str, Any]):
    """The worker's Celery configuration, read from the environment on first use, once.

    Celery reads its configuration lazily, on the first use of ``app.conf``; handing it
    this mapping keeps importing the app free of side effects. Invalid settings raise
    :class:`~worker.errors.ConfigurationInvalid` with the one line to fix.
    """

    @functools.cached_property
    def queue(self) -> QueueSettings:
        """Return this process's broker, backend and pool settings (read once)."""
        return validate_settings(QueueSettings)

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        return celery_settings(self.queue)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)
