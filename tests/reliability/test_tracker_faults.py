"""The job tracker under faults: its holder killed, watches cut, history compacted, tokens
revoked, kubesim and Redis restarted, TTLs racing it, Jobs deleted behind its back.

Each test runs real workers (the tracker runs inside them) against kubesim and a Redis
of its own, then audits the job records *and* the event stream: every Job ends in the
right phase, and no Job's transition is recorded twice (a phase follows itself in the
stream only if it was lost and written again) or skipped to a wrong end.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim import Simulator
from producer import EksOps, jobs
from tests.reliability.conftest import Stack, manifest
from tests.support.redis_servers import RedisServer
from tests.support.waiting import wait_until
from worker import jobrecords
from worker.contracts import Operation
from worker.events import STREAM_KEY
from worker.operations import ClusterClient

pytestmark = pytest.mark.integration

DURATION = "kubesim.eksops.io/duration-seconds"
OUTCOME = "kubesim.eksops.io/outcome"
TRACKING = {"JOB_TRACKING": "true", "TRACKER_LEASE_SECONDS": "2"}
ENDED = {"succeeded", "failed", "deleted"}


def job(name: str, seconds: float, *, ttl: int | None = None, **annotations: str) -> dict[str, Any]:
    body = manifest(name)
    body["metadata"]["annotations"] = {DURATION: str(seconds), **annotations}
    if ttl is not None:
        body["spec"]["ttlSecondsAfterFinished"] = ttl
    return body


def submit_burst(
    eksops: EksOps, namespace: str, count: int, *, first: float, spread: float, **kw: Any
) -> list[str]:
    """Create ``count`` Jobs ending between ``first`` and ``first + spread`` s after creation."""
    items = [
        {
            "job_manifest": job(f"j-{i:03d}", first + spread * i / max(count - 1, 1), **kw),
            "namespace": namespace,
        }
        for i in range(count)
    ]
    batch = eksops.submit_many(Operation.CREATE_JOB, items)
    wait_until(
        lambda: (s := eksops.batch(batch.batch_id)) and s.done and s, timeout=60, interval=0.2
    )
    status = eksops.batch(batch.batch_id)
    assert status is not None
    assert status.counts["succeeded"] == count, status
    return [f"j-{i:03d}" for i in range(count)]


def tracked(eksops: EksOps) -> str:
    """Wait until some worker tracks the default cluster; return the cluster's key."""
    wait_until(
        lambda: jobs.coverage(eksops.redis, jobs.cluster_key(eksops.redis, None)).current,
        timeout=30,
    )
    key = jobs.cluster_key(eksops.redis, None)
    assert key is not None
    return key


def records(eksops: EksOps, cluster: str, namespace: str, names: list[str]) -> dict[str, Any]:
    keys = [jobrecords.job_key(cluster, namespace, name) for name in names]
    return dict(zip(names, jobrecords.read_jobs(eksops.redis, keys), strict=True))


def all_ended(eksops: EksOps, cluster: str, namespace: str, names: list[str]) -> bool:
    found = records(eksops, cluster, namespace, names).values()
    return all(record is not None and record.phase in ENDED for record in found)


def transitions(eksops: EksOps) -> dict[str, list[str]]:
    """The phases each Job went through, as the event stream says, in order."""
    by_job: dict[str, list[str]] = {}
    for _id, fields in eksops.redis.xrange(STREAM_KEY):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        if entry.get("kind") == "job":
            by_job.setdefault(entry["job"], []).append(entry["phase"])
    return by_job


def assert_each_transition_once(
    eksops: EksOps, cluster: str, namespace: str, names: list[str], end: str
) -> None:
    """Every Job ended in ``end``, once; no phase recorded twice in a row; counts agree."""
    found = records(eksops, cluster, namespace, names)
    assert {name: r.phase for name, r in found.items() if r is not None} == dict.fromkeys(
        names, end
    )
    streams = transitions(eksops)
    for name in names:
        phases = streams[jobrecords.job_key(cluster, namespace, name)]
        assert phases[-1] == end, (name, phases)
        assert sum(1 for phase in phases if phase in ENDED) == 1, (name, phases)
        assert all(a != b for a, b in itertools.pairwise(phases)), (name, phases)


def holder_pid(eksops: EksOps, cluster: str) -> int:
    holder = eksops.redis.hget(jobrecords.tracker_key(cluster), "holder")
    assert holder, "nobody holds the tracker lease"
    return int(holder.decode().split(":")[1])


@pytest.mark.timeout(180)
def test_the_tracker_holder_killed_mid_burst_is_replaced_and_no_transition_is_lost_or_doubled(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    workers = [stack.worker(**TRACKING), stack.worker(**TRACKING)]
    eksops = stack.client()
    cluster = tracked(eksops)
    names = submit_burst(eksops, namespace, 60, first=3.0, spread=8.0)
    # Kill whichever worker holds the lease while most Jobs still run.
    pid = holder_pid(eksops, cluster)
    (holder,) = [w for w in workers if w.process is not None and w.process.pid == pid]
    open_jobs = eksops.redis.scard(jobrecords.open_jobs_key(cluster))
    assert open_jobs > 10, "the burst ended before the kill: nothing to take over"
    holder.kill()
    killed_at = time.monotonic()
    wait_until(lambda: holder_pid(eksops, cluster) != pid, timeout=15)
    taken_over = time.monotonic() - killed_at
    assert taken_over < 6, f"another worker took over after {taken_over:.1f}s"
    wait_until(lambda: all_ended(eksops, cluster, namespace, names), timeout=60, interval=0.3)
    assert_each_transition_once(eksops, cluster, namespace, names, "succeeded")
    survivor = next(w for w in workers if w is not holder)
    assert f"Tracking the Jobs of {cluster}" in survivor.log()


@pytest.mark.timeout(180)
def test_a_watch_cut_off_while_jobs_end_resumes_and_a_compacted_history_lists_again(
    make_stack: Callable[..., Stack], namespace: str, kube: ClusterClient
) -> None:
    stack = make_stack()
    worker = stack.worker(**TRACKING)
    eksops = stack.client()
    cluster = tracked(eksops)
    names = submit_burst(eksops, namespace, 20, first=2.0, spread=2.0, ttl=0)
    gone = submit_burst(eksops, f"{namespace}-x", 1, first=600.0, spread=0.0)
    # Every watch fails while the Jobs end (and their TTL removes them), then the
    # history the tracker would resume from is forgotten: it must list again.
    rule = stack.sim.admin.add_fault("status", code=503, verb="watch", resource="*")
    stack.sim.admin.close_watches()
    time.sleep(6)
    kube.request(
        "DELETE",
        f"/apis/batch/v1/namespaces/{namespace}-x/jobs/{gone[0]}",
        query={"propagationPolicy": "Background"},
    )
    stack.sim.admin.compact_history()
    stack.sim.admin.remove_fault(rule["id"])
    wait_until(lambda: all_ended(eksops, cluster, namespace, names), timeout=60, interval=0.3)
    wait_until(lambda: all_ended(eksops, cluster, f"{namespace}-x", gone), timeout=60)
    # Jobs the TTL removed while nobody watched: their end was never seen.
    ended = records(eksops, cluster, namespace, names)
    phases = {r.phase for r in ended.values() if r is not None}
    assert "deleted" in phases
    assert phases <= {"succeeded", "deleted"}
    (deleted,) = records(eksops, cluster, f"{namespace}-x", gone).values()
    assert deleted is not None
    assert deleted.phase == "deleted"
    assert "listing again" in worker.log()
    for seen in transitions(eksops).values():
        assert sum(1 for phase in seen if phase in ENDED) == 1, seen


@pytest.mark.timeout(120)
def test_revoked_tokens_under_a_watch_are_reminted_and_tracking_goes_on(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    worker = stack.worker(**TRACKING)
    eksops = stack.client()
    cluster = tracked(eksops)
    names = submit_burst(eksops, namespace, 10, first=4.0, spread=2.0)
    time.sleep(1.1)  # X-Amz-Date has 1 s resolution: the re-minted token must be newer
    stack.sim.admin.revoke_tokens()  # every token so far has expired
    stack.sim.admin.close_watches()  # the server ends the watches; reopening needs a token
    wait_until(lambda: all_ended(eksops, cluster, namespace, names), timeout=60, interval=0.3)
    assert_each_transition_once(eksops, cluster, namespace, names, "succeeded")
    assert "re-minting the IAM token" in worker.log()


@pytest.mark.timeout(180)
def test_a_redis_restart_mid_burst_loses_and_doubles_no_transition(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack(appendfsync="always")
    stack.worker(**TRACKING)
    eksops = stack.client()
    cluster = tracked(eksops)
    names = submit_burst(eksops, namespace, 30, first=3.0, spread=6.0)
    stack.broker.restart(down_for=3.0)
    wait_until(lambda: all_ended(eksops, cluster, namespace, names), timeout=90, interval=0.5)
    assert_each_transition_once(eksops, cluster, namespace, names, "succeeded")


def test_ttl_cleanup_racing_the_tracker_leaves_the_true_end_and_the_failure_reason(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker(**TRACKING)
    eksops = stack.client()
    cluster = tracked(eksops)
    good = submit_burst(eksops, namespace, 10, first=1.0, spread=1.0, ttl=0)
    bad = submit_burst(
        eksops,
        f"{namespace}-f",
        5,
        first=1.0,
        spread=1.0,
        ttl=0,
        **{OUTCOME: "fail", "kubesim.eksops.io/exit-code": "4"},
    )
    wait_until(lambda: all_ended(eksops, cluster, namespace, good), timeout=60)
    wait_until(lambda: all_ended(eksops, cluster, f"{namespace}-f", bad), timeout=60)
    assert_each_transition_once(eksops, cluster, namespace, good, "succeeded")
    assert_each_transition_once(eksops, cluster, f"{namespace}-f", bad, "failed")
    for record in records(eksops, cluster, f"{namespace}-f", bad).values():
        assert record is not None
        assert record.job["reason"] == "BackoffLimitExceeded"
        assert record.summary()["failed_pods"][0]["exit_code"] == 4
    # The TTL removed every Job; the records stay, saying when.
    wait_until(
        lambda: all(
            r is not None and r.removed_at
            for r in records(eksops, cluster, f"{namespace}-f", bad).values()
        )
    )


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[Callable[[], Simulator]]:
    """A kubesim of the test's own, restartable on the same port with the same state."""
    state = tmp_path / "kubesim-state"
    port = _free_port()
    current: list[Simulator] = []

    def start() -> Simulator:
        sim = Simulator(
            cluster="eksops-restart", port=port, state_dir=state, job_duration=5.0
        ).start()
        current.append(sim)
        return sim

    yield start
    for sim in current:
        with contextlib.suppress(Exception):
            sim.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(180)
def test_a_kubesim_restart_mid_burst_is_ridden_out(
    own_sim: Callable[[], Simulator], tmp_path: Path, namespace: str
) -> None:
    sim = own_sim()
    broker = RedisServer(tmp_path / "broker").start()
    stack = Stack(sim=sim, tmp=tmp_path, broker=broker)
    try:
        stack.worker(**TRACKING)
        eksops = stack.client()
        cluster = tracked(eksops)
        names = submit_burst(eksops, namespace, 20, first=4.0, spread=4.0)
        before = dict(sim.env)
        sim.stop()
        time.sleep(2)
        restarted = own_sim()
        assert restarted.env == before  # same port, same CA: clients reconnect as they are
        wait_until(lambda: all_ended(eksops, cluster, namespace, names), timeout=90, interval=0.5)
        assert_each_transition_once(eksops, cluster, namespace, names, "succeeded")
    finally:
        for client in stack.clients:
            client.close()
        for worker in stack.workers:
            worker.kill()
        broker.stop()


def test_a_job_deleted_by_someone_else_is_recorded_as_deleted(
    make_stack: Callable[..., Stack], namespace: str, kube: ClusterClient
) -> None:
    stack = make_stack()
    stack.worker(**TRACKING)
    eksops = stack.client()
    cluster = tracked(eksops)
    names = submit_burst(eksops, namespace, 3, first=600.0, spread=0.0)
    wait_until(
        lambda: all(
            r is not None and r.phase == "running"
            for r in records(eksops, cluster, namespace, names).values()
        )
    )
    kube.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{names[0]}")
    wait_until(lambda: all_ended(eksops, cluster, namespace, names[:1]))
    (record,) = records(eksops, cluster, namespace, names[:1]).values()
    assert record is not None
    assert record.phase == "deleted"
    assert record.removed_at
    others = records(eksops, cluster, namespace, names[1:]).values()
    assert all(r is not None and r.phase == "running" for r in others)
