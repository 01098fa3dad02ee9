"""Redis Sentinel: a primary failover mid-burst loses and doubles nothing.

Real ``redis-server`` processes (Debian's, which also runs as a sentinel): a master, a
replica and a sentinel (quorum 1). Workers and producers are configured with a
``sentinel://`` URL only. Mid-burst the master fails over, politely (``SENTINEL
FAILOVER``) or not at all politely (SIGKILL, the sentinel promotes the replica after a
second); every request must still end once, with one Job each.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from kubesim import Simulator
from producer import EksOps
from producer.settings import ProducerSettings
from tests.reliability.conftest import FAST, batch_when_readable, jobs_by_request, manifest
from tests.support.processes import WorkerProcess
from tests.support.redis_servers import RedisServer, SentinelServer, system_redis
from tests.support.waiting import wait_until
from worker.contracts import Operation
from worker.operations import ClusterClient
from worker.settings import QueueSettings

pytestmark = pytest.mark.integration

MASTER_NAME = "eksops-test"
BURST = 120


@dataclass
class Replicated:
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def env(self, sim: Simulator) -> dict[str, str]:
        return {
            **sim.env,
            **FAST,
            "REDIS_URL": self.sentinel.url,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "VISIBILITY_TIMEOUT_SECONDS": "20",
        }

    def worker(self, sim: Simulator) -> WorkerProcess:
        process = WorkerProcess(self.env(sim), self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(process)
        return process.start()

    def replica_in_sync(self) -> bool:
        """Whether the replica is online and has everything the master has (for a failover)."""
        info = self.master.client().info("replication")
        replica = info.get("slave0") or {}
        return replica.get("state") == "online" and (
            int(info.get("master_repl_offset", 0)) - int(replica.get("offset", 0)) < 1024
        )

    def promoted(self, old_master: int | None, disrupt: Callable[[], None]) -> Callable[[], bool]:
        """A check that the sentinel names a new master; asks again every 10 s if refused."""
        asked = time.monotonic()

        def check() -> bool:
            nonlocal asked
            if self.sentinel.master_port() not in (None, old_master):
                return True
            if disrupt == self.sentinel.failover and time.monotonic() - asked > 10:
                with contextlib.suppress(redis.RedisError):  # a failover already in progress
                    self.sentinel.failover()
                asked = time.monotonic()
            return False

        return check

    def client(self) -> EksOps:
        queue = QueueSettings(redis_url=self.sentinel.url, redis_sentinel_master=MASTER_NAME)
        return EksOps(settings=ProducerSettings(), queue=queue)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Replicated]:
    binary = system_redis()
    if binary is None:
        pytest.skip("needs the system redis-server (it also runs as a sentinel)")
    master = RedisServer(tmp_path / "master", binary=binary, appendfsync="everysec").start()
    replica = RedisServer(
        tmp_path / "replica", binary=binary, appendfsync="everysec", replica_of=master
    ).start()
    wait_until(lambda: master.client().info("replication").get("connected_slaves") == 1)
    sentinel = SentinelServer(tmp_path / "sentinel", master, name=MASTER_NAME, binary=binary)
    sentinel.start()
    wait_until(
        lambda: sentinel.client().execute_command("SENTINEL", "REPLICAS", MASTER_NAME), timeout=30
    )
    stack = Replicated(master, replica, sentinel, tmp_path)
    yield stack
    for process in stack.workers:
        process.stop()
    for server in (sentinel, replica, master):
        server.stop()


def burst(
    sim: Simulator, stack: Replicated, kube: ClusterClient, disrupt: Callable[[], None]
) -> None:
    namespace = f"rel-{uuid.uuid4().hex[:10]}"
    sim.admin.add_fault("latency", ms=40, verb="create", resource="jobs")
    try:
        for _ in range(2):
            stack.worker(sim)
        eksops = stack.client()
        batch = eksops.submit_many(
            Operation.CREATE_JOB,
            [{"job_manifest": manifest(), "namespace": namespace} for _ in range(BURST)],
        )
        assert batch.accepted == BURST
        wait_until(
            lambda: (
                (s := batch_when_readable(eksops, batch.batch_id))
                and s.counts["succeeded"] >= BURST // 4
            ),
            timeout=60,
        )
        old_master = stack.sentinel.master_port()
        wait_until(stack.replica_in_sync, timeout=60)
        disrupt()
        wait_until(stack.promoted(old_master, disrupt), timeout=90, interval=0.2)
        status = wait_until(
            lambda: (s := batch_when_readable(eksops, batch.batch_id)) and s.done and s,
            timeout=180,
            interval=0.5,
            describe=lambda: batch_when_readable(eksops, batch.batch_id),
        )
        assert status.counts["succeeded"] == BURST, status
        created = jobs_by_request(kube, namespace)
        assert len(created) == BURST  # every request made its Job
        assert all(len(jobs) == 1 for jobs in created.values())  # and none made two
        assert all(worker.alive for worker in stack.workers)
        eksops.close()
    finally:
        sim.admin.clear_faults()


@pytest.mark.timeout(300)
def test_a_requested_failover_mid_burst_loses_and_doubles_nothing(
    sim: Simulator, replicated: Replicated, kube: ClusterClient
) -> None:
    burst(sim, replicated, kube, replicated.sentinel.failover)


@pytest.mark.timeout(300)
def test_a_killed_primary_mid_burst_loses_and_doubles_nothing(
    sim: Simulator, replicated: Replicated, kube: ClusterClient
) -> None:
    burst(sim, replicated, kube, replicated.master.kill)
