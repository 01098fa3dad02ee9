"""Enqueue requests: record and message written in one atomic Redis step.

Why not ``send_task``: a caller-supplied request ID must yield exactly one task even
when the caller retries after a crash, so "remember this ID" and "push its message"
must happen together or not at all. A small Lua script does both (``HSETNX`` on the
request record, then ``LPUSH`` of the message) and skips IDs already submitted; a
chunk of many requests costs one round trip, which is what makes bulk submission run
at Redis speed instead of one publish per message.

The message is the one Celery would publish: Celery builds the task message
(``app.amqp.as_task_v2``), kombu serialises the body, and the envelope is kombu's Redis
transport format (checked against kombu's own output in the tests).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.serialization import dumps as kombu_dumps

from worker.contracts import QUEUE
from worker.records import record_key

_ORIGIN = f"eksops-producer@{socket.gethostname()}:{os.getpid()}"

# KEYS[1]: the queue list; KEYS[2..]: one request record per item.
# ARGV[1]: record TTL; ARGV[2]: submitted_at; then per item: operation, batch_id, message.
_SUBMIT_SCRIPT = """
local ttl = tonumber(ARGV[1])
local accepted = {}
for i = 2, #KEYS do
  local base = 3 + (i - 2) * 3
  if redis.call('HSETNX', KEYS[i], 'submitted_at', ARGV[2]) == 1 then
    redis.call('HSET', KEYS[i], 'operation', ARGV[base], 'batch_id', ARGV[base + 1])
    redis.call('EXPIRE', KEYS[i], ttl)
    redis.call('LPUSH', KEYS[1], ARGV[base + 2])
    accepted[#accepted + 1] = 1
  else
    accepted[#accepted + 1] = 0
  end
end
return accepted
"""


@dataclass(frozen=True)
class Outgoing:
    """One validated request ready to enqueue."""

    request_id: str
    task_name: str
    kwargs: dict[str, Any]
    batch_id: str = ""


def build_message(app: Celery, item: Outgoing) -> str:
    """Return the kombu Redis envelope of ``item``'s Celery task message."""
    task = app.amqp.as_task_v2(item.request_id, item.task_name, kwargs=item.kwargs, origin=_ORIGIN)
    content_type, content_encoding, payload = kombu_dumps(task.body, serializer="json")
    body = payload.encode() if isinstance(payload, str) else payload
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": {
            **task.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)


class Enqueuer:
    """Pushes requests onto the eksops queue, each request ID at most once."""

    def __init__(self, app: Celery, redis: Any, *, record_ttl_seconds: int) -> None:
        self._app = app
        self._redis = redis
        self._ttl = record_ttl_seconds
        self._script = redis.register_script(_SUBMIT_SCRIPT)

    def enqueue(
        self, items: Sequence[Outgoing], *, submitted_at: str, chunk: int = 500
    ) -> list[bool]:
        """Enqueue ``items``; return, per item, whether it was new (False: duplicate ID).

        Chunks go out in one pipeline: each chunk is atomic, and Redis is never blocked
        for long by one script.
        """
        if not items:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            keys = [QUEUE, *(record_key(item.request_id) for item in part)]
            args: list[Any] = [self._ttl, submitted_at]
            for item in part:
                args += [item.task_name, item.batch_id, build_message(self._app, item)]
            self._script(keys=keys, args=args, client=pipe)
        accepted: list[bool] = []
        for flags in pipe.execute():
            accepted.extend(bool(flag) for flag in flags)
        return accepted
