"""Storing a request's outcome exactly as Celery's result backend would, in one write.

Celery's own ``store_result`` reads the stored meta before it writes (a guard against
overwriting a stored success). The execution that stores an outcome holds the
request's lease and found no outcome when it started, so that read would cost a
round trip and change nothing. This writes the same meta (state, result or serialised
error, ``date_done``) through the backend's own encoder, so pollers read it with
Celery's decoder unchanged (checked in ``tests/unit/test_store_outcome.py``).
"""

from __future__ import annotations

from typing import Any


def set_result_meta(backend: Any, request_id: str, outcome: Any, state: str) -> None:
    """Store ``outcome`` (a result, or an exception for a failure) under ``request_id``."""
    encoded = backend.encode_result(outcome, state)  # an error becomes its JSON form
    meta = backend._get_result_meta(result=encoded, state=state, traceback=None, request=None)
    meta["task_id"] = request_id
    backend._set_with_state(backend.get_key_for_task(request_id), backend.encode(meta), state)
