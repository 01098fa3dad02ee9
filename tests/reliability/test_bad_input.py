"""Bad input, from callers or straight onto the queue: refused, logged, never run."""

from __future__ import annotations

import base64
import json
import pickle
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producer.enqueue import Outgoing, build_message
from tests.reliability.conftest import Stack, final, manifest
from tests.support.processes import run_cli
from tests.support.waiting import wait_until
from worker.contracts import QUEUE, Operation, RequestState
from worker.delivery import lanes
from worker.errors import InvalidRequest

pytestmark = pytest.mark.integration


def nothing_written(stack: Stack) -> bool:
    return stack.broker.client().dbsize() == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("operation", "arguments", "problem"),
    [
        (Operation.DELETE_NAMESPACE, {"namespace_name": "kube-system"}, "is protected"),
        (Operation.DELETE_NAMESPACE, {"namespace_name": " KUBE-SYSTEM"}, "is protected"),
        (Operation.DELETE_NAMESPACE, {"namespace_name": "default"}, "is protected"),
        (Operation.DELETE_NAMESPACE, {"namespace_name": "amazon-cloudwatch"}, "is protected"),
        (Operation.CREATE_NAMESPACE, {"namespace_name": "../etc"}, "not a valid name"),
        (Operation.CREATE_NAMESPACE, {"namespace_name": "x" * 64}, "the limit is 63"),
        (Operation.CREATE_NAMESPACE, {"namespace_name": ""}, "must not be empty"),
        (Operation.CREATE_NAMESPACE, {"namespace_name": "équipe"}, "not a valid name"),
        (Operation.GET_JOB_STATUS, {"job_name": "ok", "verbose": True}, "verbose: unknown field"),
        (
            Operation.CREATE_JOB,
            {
                "job_manifest": {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [{"name": "c", "image": "i", "bogus": 1}],
                                "restartPolicy": "Never",
                            }
                        }
                    }
                }
            },
            "'bogus' was unexpected",
        ),
        (
            Operation.CREATE_JOB,
            {"job_manifest": {**manifest(), "metadata": {"annotations": {"x": "y" * 600_000}}}},
            "the limit is 524288 bytes",
        ),
    ],
)
def test_bad_requests_are_refused_before_anything_is_written_or_called(
    make_stack: Callable[..., Stack], operation: Operation, arguments: dict[str, Any], problem: str
) -> None:
    stack = make_stack()
    eksops = stack.client()
    stack.sim.admin.clear_counters()
    with pytest.raises(InvalidRequest, match=problem.replace("(", r"\(")):
        eksops.submit(operation, arguments)
    assert nothing_written(stack)
    assert stack.sim.admin.counters()["total"] == 0


@pytest.mark.timeout(60)
def test_the_cli_refuses_a_protected_namespace_whatever_its_spelling(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    for spelling in (
        "kube-system",
        "KUBE-SYSTEM",
        " kube-system",
        "kube-public",
        "kube-node-lease",
    ):
        completed = run_cli(
            ["delete-namespace", spelling, "--allow-unmanaged"], {"REDIS_URL": stack.broker.url}
        )
        assert completed.returncode == 2, spelling
        assert "is protected" in completed.stderr
    assert nothing_written(stack)


def _envelope(body: bytes, content_type: str, headers: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8" if content_type == "application/json" else "binary",
            "content-type": content_type,
            "headers": headers,
            "properties": {
                "correlation_id": headers.get("id", "x"),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.timeout(120)
def test_poison_messages_are_dropped_and_logged_once_and_the_worker_keeps_serving(
    make_stack: Callable[..., Stack], namespace: str, tmp_path: Path
) -> None:
    stack = make_stack()
    worker = stack.worker()
    eksops = stack.client()
    redis = stack.broker.client()
    marker = tmp_path / "pickle-ran"
    headers = {
        "lang": "py",
        "task": "eksops.create_namespace",
        "id": str(uuid.uuid4()),
        "retries": 0,
    }
    wrong_types = Outgoing(
        str(uuid.uuid4()), Operation.CREATE_JOB.task_name, {"job_manifest": "not a manifest"}
    )
    poison = [
        b"this is not json at all",
        _envelope(b"{not json", "application/json", headers),
        _envelope(
            pickle.dumps(_Exploit(marker)),
            "application/x-python-serialize",
            {**headers, "id": str(uuid.uuid4())},
        ),
        _envelope(
            json.dumps([[], {}, {}]).encode(),
            "application/json",
            {**headers, "task": "os.system", "id": str(uuid.uuid4())},
        ),
        _envelope(json.dumps([[], {}, {}]).encode(), "application/json", {}),
        build_message(eksops.app, wrong_types),
    ]
    for message in poison:
        redis.lpush(QUEUE, message)

    after = final(eksops, eksops.create_namespace(namespace).request_id)
    assert after.state is RequestState.SUCCEEDED
    wait_until(lambda: lanes.waiting(redis).total == 0 and redis.hlen("unacked") == 0, timeout=30)
    time.sleep(2)  # long enough for any redelivery loop to show up
    log = worker.log()
    assert worker.alive
    assert not marker.exists()
    assert lanes.waiting(redis).total == 0
    assert redis.hlen("unacked") == 0
    records = [line for line in log.splitlines() if " | DEBUG    | " not in line]
    for logged in (
        "| ERROR    | transport            | Dropped an item of the task queue that is not a message (not JSON",
        "| CRITICAL | consumer             | Can't decode message body",
        "| ERROR    | consumer             | Received invalid task message: Refusing to deserialize untrusted content of type pickle",
        "| ERROR    | consumer             | Received unregistered task of type 'os.system'",
        "| WARNING  | consumer             | Received and deleted unknown message.",
    ):
        assert sum(logged in record for record in records) == 1, logged
    rejected = eksops.status(wrong_types.request_id)
    assert rejected.state is RequestState.FAILED
    assert rejected.error is not None
    assert rejected.error.code == "BadRequest"
    assert "job_manifest: Input should be a valid dictionary" in rejected.error.message
