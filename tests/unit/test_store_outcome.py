"""A chunk's one-write result store leaves exactly what Celery's own store leaves."""

from __future__ import annotations

import uuid
from typing import Any

import fakeredis
import pytest
from celery import Celery, states

from worker import errors
from worker.delivery.results import set_result_meta as store_outcome


@pytest.fixture
def backend() -> Any:
    app = Celery("t", set_as_current=False)
    app.conf.update(
        result_backend="redis://fake", result_serializer="json", result_accept_content=["json"]
    )
    backend = app.backend
    backend.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return backend


def comparable(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key not in {"task_id", "date_done"}}


def test_a_success_reads_back_as_celery_stores_it(backend: Any) -> None:
    ours, celerys = str(uuid.uuid4()), str(uuid.uuid4())
    result = {"job_name": "nightly", "status": "created"}
    store_outcome(backend, ours, result, states.SUCCESS)
    backend.store_result(celerys, result, states.SUCCESS)
    assert comparable(backend.get_task_meta(ours)) == comparable(backend.get_task_meta(celerys))
    assert backend.get_task_meta(ours)["task_id"] == ours


def test_a_failure_reads_back_as_the_same_error(backend: Any) -> None:
    ours, celerys = str(uuid.uuid4()), str(uuid.uuid4())
    error = errors.Conflict('jobs.batch "nightly" already exists', 409, "AlreadyExists")
    store_outcome(backend, ours, error, states.FAILURE)
    backend.mark_as_failure(celerys, error)
    mine, theirs = backend.get_task_meta(ours), backend.get_task_meta(celerys)
    assert mine["status"] == theirs["status"] == states.FAILURE
    assert mine["result"].to_info() == theirs["result"].to_info() == error.to_info()
