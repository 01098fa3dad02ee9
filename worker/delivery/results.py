"""Storing a request's outcome exactly as Celery's result backend would, in one write.

Celery's own ``store_result`` reads the stored meta before it writes (a guard against
overwriting a stored success). The execution that stores an outcome holds the
request's lease and found no outcome when it started, so that read would cost a
round trip and change nothing. This writes the same meta (state, result or serialised
error, ``date_done``) through the backend's own encoder, with the same expiry and the
same publish Celery's Redis backend does, so pollers read it with Celery's decoder
unchanged (checked in ``tests/unit/test_store_outcome.py``). What eksops records
beside the outcome (the request record's links, the waiters' notification, the event
stream) goes in the same pipeline when the results live in the broker's Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import states

Also = Callable[[Any], None]  # queues more commands on the pipeline of the store


def set_result_meta(
    backend: Any, request_id: str, outcome: Any, state: str, *, also: Also | None = None
) -> bool:
    """Store ``outcome`` (a result, or an exception for a failure) under ``request_id``.

    ``also`` queues further commands on the same pipeline when the backend is Redis;
    returns whether it did (False: the caller sends them itself).
    """
    client = getattr(backend, "client", None)
    if client is None or not hasattr(client, "pipeline"):  # not Redis: Celery's own path
        key, value = _encoded(backend, request_id, outcome, state)
        backend._set_with_state(key, value, state)
        return False
    with client.pipeline() as pipe:
        queue_result_meta(pipe, backend, request_id, outcome, state)
        if also is not None:
            also(pipe)
        pipe.execute()
    return also is not None


def queue_result_meta(pipe: Any, backend: Any, request_id: str, outcome: Any, state: str) -> None:
    """Queue on ``pipe`` (of a Redis result backend) the store :func:`set_result_meta` does."""
    key, value, expires = result_write(backend, request_id, outcome, state)
    if expires:
        pipe.setex(key, expires, value)
    else:
        pipe.set(key, value)
    pipe.publish(key, value)  # as Celery does, for its result consumers


def result_write(backend: Any, request_id: str, outcome: Any, state: str) -> tuple[str, Any, int]:
    """What a Redis result backend writes for ``outcome``: its key, the encoded meta, and
    its expiry in seconds (0: none), to be written with ``SETEX`` (or ``SET``) and then
    published on the key's own channel, as :func:`queue_result_meta` does."""
    key, value = _encoded(backend, request_id, outcome, state)
    expires = backend.failure_expires if state == states.FAILURE else backend.expires
    return key, value, int(expires or 0)


def decode_result_meta(backend: Any, raw: Any) -> dict[str, Any]:
    """Decode a stored meta read straight from Redis, as the backend's own read does
    (``PENDING`` when nothing is stored): for reads pipelined with eksops's own."""
    if not raw:
        return {"status": states.PENDING, "result": None}
    return dict(backend.decode_result(raw))


def _encoded(backend: Any, request_id: str, outcome: Any, state: str) -> tuple[Any, Any]:
    encoded = backend.encode_result(outcome, state)  # an error becomes its JSON form
    meta = backend._get_result_meta(result=encoded, state=state, traceback=None, request=None)
    meta["task_id"] = request_id
    return backend.get_key_for_task(request_id), backend.encode(meta)
