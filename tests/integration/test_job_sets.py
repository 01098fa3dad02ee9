"""A 1,000-Job burst where some Jobs fail in different ways, followed to its end.

What a batch scheduler does with eksops: submit the burst with a callback URL, follow
the batch (Jobs by phase, failed Jobs with reason, exit code and log line), wait for
it through the library and the CLI, receive a signed callback per request and per Job,
and read any Job's status without an API call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from kubesim import Simulator
from producer import EksOps
from tests.integration.conftest import CALLBACK_KEY, job_manifest
from tests.support.processes import run_cli
from tests.support.receiver import Receiver
from tests.support.waiting import wait_until
from worker import callbacks
from worker.contracts import Operation

pytestmark = pytest.mark.integration

OUTCOME = "kubesim.eksops.io/outcome"
# name prefix -> (annotations, activeDeadlineSeconds, Job reason, pod reason, exit code)
FAILURES: dict[str, tuple[dict[str, str], int | None, str, str | None, int | None]] = {
    "exit": (
        {OUTCOME: "fail", "kubesim.eksops.io/exit-code": "3"},
        None,
        "BackoffLimitExceeded",
        "Error",
        3,
    ),
    "oom": ({OUTCOME: "oom"}, None, "BackoffLimitExceeded", "OOMKilled", 137),
    "pull": ({OUTCOME: "image-pull-error"}, 3, "DeadlineExceeded", None, None),
    "late": ({OUTCOME: "hang"}, 2, "DeadlineExceeded", None, None),
}
PER_FAILURE = 10
TOTAL = 1_000


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def _items(namespace: str) -> list[dict[str, Any]]:
    items = []
    for kind, (labels, deadline, *_rest) in FAILURES.items():
        for index in range(PER_FAILURE):
            manifest = job_manifest(f"{kind}-{index}", **labels)
            if deadline is not None:
                manifest["spec"]["activeDeadlineSeconds"] = deadline  # type: ignore[index]
            items.append({"job_manifest": manifest, "namespace": namespace})
    items += [
        {"job_manifest": job_manifest(f"ok-{index}"), "namespace": namespace}
        for index in range(TOTAL - len(items))
    ]
    return items


@pytest.mark.timeout(300)
def test_a_burst_with_failures_of_every_kind_is_followed_to_its_end(
    eksops: EksOps,
    namespace: str,
    receiver: Receiver,
    sim: Simulator,
    cli_env: dict[str, str],
) -> None:
    submission = eksops.submit_many(
        Operation.CREATE_JOB, _items(namespace), callback_url=receiver.url("/burst")
    )
    assert submission.accepted == TOTAL

    # Waiting for it through the library: the batch, then its Jobs, to their end.
    status = wait_until(
        lambda: (s := eksops.batch(submission.batch_id)) and s.done and s.jobs_done and s,
        timeout=240,
        interval=0.5,
        describe=lambda: eksops.batch(submission.batch_id),
    )
    failed_count = PER_FAILURE * len(FAILURES)
    assert status.counts["succeeded"] == TOTAL
    assert status.jobs["succeeded"] == TOTAL - failed_count
    assert status.jobs["failed"] == failed_count
    by_kind: dict[str, list[Any]] = {}
    full = eksops.batch(submission.batch_id, failed_limit=failed_count)
    assert full is not None
    for failed in full.failed_jobs:
        by_kind.setdefault(failed.job_name.split("-")[0], []).append(failed)
    for kind, (_annotations, _deadline, reason, pod_reason, exit_code) in FAILURES.items():
        assert len(by_kind[kind]) == PER_FAILURE, kind
        for failed in by_kind[kind]:
            assert failed.reason == reason, failed
            if exit_code is not None:
                assert (failed.pod_reason, failed.exit_code) == (pod_reason, exit_code), failed

    # A failed Job's log tail, captured before anything could remove its pods.
    record = wait_until(lambda: (r := eksops.job("exit-0", namespace)) and r.log and r)
    assert "exit status 3" in record.log["lines"][-1]

    # The CLI says the same, in JSON.
    shown = run_cli(["batch", submission.batch_id, "--json"], cli_env)
    assert shown.returncode == 1, shown.stderr  # some Jobs failed
    payload = json.loads(shown.stdout)
    assert (payload["jobs"]["succeeded"], payload["jobs"]["failed"]) == (960, failed_count)

    # Status reads of any number of Jobs cost no API call.
    sim.admin.clear_counters()
    for index in range(50):
        assert eksops.job_status(f"ok-{index}", namespace)["state"] == "completed"
    assert sim.admin.count("get", "jobs") == 0

    # One signed delivery per request and per Job. Delivery is at least once: a POST the
    # receiver was slow to answer (1 s here) is sent again under the same delivery ID, and
    # only then; a sender never takes over the entries of another that is still alive.
    def deliveries() -> dict[str, list[Any]]:
        by_delivery: dict[str, list[Any]] = {}
        for post in receiver.delivered("/burst"):
            by_delivery.setdefault(post.headers[callbacks.DELIVERY_HEADER], []).append(post)
        return by_delivery

    wait_until(lambda: len(deliveries()) >= 2 * TOTAL, timeout=120, interval=0.5)
    by_delivery = deliveries()
    firsts = [posts[0] for posts in by_delivery.values()]
    kinds = Counter(post.payload["kind"] for post in firsts)
    assert kinds == {"request": TOTAL, "job": TOTAL}
    assert len({(p.payload["kind"], p.payload["request_id"]) for p in firsts}) == 2 * TOTAL
    job_ends = Counter(
        post.payload["job"]["phase"] for post in firsts if post.payload["kind"] == "job"
    )
    assert job_ends == {"succeeded": TOTAL - failed_count, "failed": failed_count}
    for repeats in by_delivery.values():
        if len(repeats) > 1:
            first = repeats[0].payload
            assert all(p.payload["kind"] == first["kind"] for p in repeats), repeats
            sent = eksops.status(first["request_id"])
            assert sent is not None
            assert sent.callbacks[first["kind"]].attempts >= len(repeats), sent.callbacks
    for post in firsts[:50]:
        signature = post.headers[callbacks.SIGNATURE_HEADER]
        assert callbacks.verify(CALLBACK_KEY.encode(), signature, post.body)
