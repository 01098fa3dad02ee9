"""The message format: a Celery task message in kombu's Redis envelope, built and parsed here.

Producers write messages straight into the queue list (``producer.enqueue``, so that
recording a request and pushing its message are one atomic step), and the worker's
Lua claim (``worker.delivery.inbox``) parses them inside Redis. Both sides therefore
agree on one format, declared once in this module:

* the body is the task message Celery would publish (``app.amqp.as_task_v2``): a single
  request's own task (``eksops.<operation>``, its arguments as keyword arguments), or a
  chunk of a bulk submission (``eksops.chunk``: ``{"operation", "items": [{"request_id",
  "arguments"}]}``), JSON, or signed with Celery's ``auth`` serializer;
* the envelope is kombu's Redis transport format: base64 body, headers, and properties
  whose ``delivery_info`` (exchange, routing key) and ``delivery_tag`` (the message ID:
  unique per message) the claim reads; :data:`LUA_ENVELOPE` is that reading, in Lua;
  and :data:`ENQUEUED_AT`, when the producer built it (epoch seconds), which is how the
  age of the oldest waiting message is read in place (``worker.queues``) and how long a
  request waited is measured (``worker.metering``).

Serialised with orjson: the same JSON as kombu's encoder for these plain types, at a
fraction of the cost, which is most of what a bulk submit spends per message (checked
against kombu's own output in ``tests/unit/test_enqueue.py``).
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from kombu.serialization import dumps as kombu_dumps

from worker.contracts import CHUNK_TASK, QUEUE, Operation

_ORIGIN = f"eksops-producer@{socket.gethostname()}:{os.getpid()}"
#: The message property holding when it was enqueued (epoch seconds, producer's clock).
ENQUEUED_AT = "eksops_enqueued_at"

# Lua: ``envelope(item)`` returns the decoded message, its delivery_info and tag when
# ``item`` has the shape of a kombu envelope, else nil. Used inside Redis scripts.
LUA_ENVELOPE = """
local function envelope(item)
  local ok, message = pcall(cjson.decode, item)
  if not ok or type(message) ~= 'table' or message.body == nil then return nil end
  local properties = message.properties
  if type(properties) ~= 'table' then return nil end
  local info, tag = properties.delivery_info, properties.delivery_tag
  if type(info) ~= 'table' or type(tag) ~= 'string'
      or type(info.exchange) ~= 'string' or type(info.routing_key) ~= 'string' then
    return nil
  end
  return message, info, tag
end
"""


def enqueued_at(properties: Mapping[str, Any] | None) -> float | None:
    """When a message was enqueued, from its properties (None if they do not say)."""
    value = (properties or {}).get(ENQUEUED_AT)
    return float(value) if isinstance(value, int | float) else None


def is_envelope(message: object) -> bool:
    """Return whether ``message`` (decoded JSON) has the shape of a kombu envelope."""
    if not isinstance(message, dict) or "body" not in message:
        return False
    properties = message.get("properties")
    return (
        isinstance(properties, dict)
        and isinstance(properties.get("delivery_info"), dict)
        and "delivery_tag" in properties
    )


#: The tasks of single requests (``worker.tasks``): their outcomes are the engine's.
_REQUEST_TASKS = frozenset(operation.task_name for operation in Operation)


def envelope(
    app: Any,
    message_id: str,
    task_name: str,
    kwargs: Mapping[str, Any],
    summary: str,
    *,
    routing_key: str = QUEUE,
    priority: int = 0,
) -> bytes:
    """Return the envelope of one task message ``message_id`` running ``task_name``.

    ``summary`` is what Flower and Celery's log lines show for the arguments: a short
    ``key=value`` line, never the whole manifest (Celery's own repr of a manifest costs
    most of a submit). ``routing_key`` names the message's lane (``eksops``, or
    ``eksops.bulk.<group>``: see ``worker.delivery.lanes``), where it goes back to if it
    is ever restored; ``priority`` is a bulk group's weight.
    """
    task = app.amqp.as_task_v2(
        message_id,
        task_name,
        kwargs=dict(kwargs),
        origin=_ORIGIN,
        argsrepr="()",
        kwargsrepr=summary or "{...}",
        # A request's task stores no result of its own (the engine stored the outcome):
        # a message's header overrides the task's ``ignore_result``, and without it
        # Celery would read the outcome back after every request, to not overwrite it.
        # A chunk's task stores its tally, as any other task stores its result.
        ignore_result=task_name in _REQUEST_TASKS,
    )
    if app.conf.task_serializer == "auth":  # signed messages (see celeryconfig)
        content_type, content_encoding, payload = kombu_dumps(task.body, serializer="auth")
        body = payload.encode() if isinstance(payload, str) else payload
    else:
        content_type, content_encoding, body = "application/json", "utf-8", orjson.dumps(task.body)
    return orjson.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": task.headers,
            "properties": {
                **task.properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": routing_key},
                "priority": priority,
                "body_encoding": "base64",
                # Unique per message: a message ID is enqueued once (retries are new
                # messages that kombu tags itself).
                "delivery_tag": message_id,
                # Last, so it is among the message's last bytes (read there in place).
                ENQUEUED_AT: round(time.time(), 3),
            },
        }
    )


def chunk_body(
    operation: Operation, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Return the keyword arguments of a chunk carrying ``items`` (request ID, arguments)."""
    return {
        "operation": operation.value,
        "items": [{"request_id": rid, "arguments": arguments} for rid, arguments in items],
    }


def chunk_envelope(
    app: Any,
    chunk_id: str,
    operation: Operation,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    routing_key: str = QUEUE,
    priority: int = 0,
) -> bytes:
    """Return the envelope of one chunk message carrying ``items`` of one operation."""
    return envelope(
        app,
        chunk_id,
        CHUNK_TASK,
        chunk_body(operation, items),
        f"{operation.value} x{len(items)}",
        routing_key=routing_key,
        priority=priority,
    )
