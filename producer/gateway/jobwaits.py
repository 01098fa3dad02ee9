"""The gateway's view of Jobs: status from records at once, and waits for a Job's end.

``GET /api/eks-get-job-status`` answers from the job record as the synchronous seed
API did (200 with the body, 404 with the seed's text), with no queue and no API call,
while the cluster's tracker covers it; ``?wait_for=complete`` holds a create-job or
job-status caller until the Job itself has ended. A waiting caller is a coroutine on
the gateway's one shared pub/sub connection (``producer.notify``): woken by the
tracker's publish, no thread and no poll per caller; a caller that goes away frees
its place at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from producer import jobs
from producer.client import EksOps
from worker import jobrecords
from worker.contracts import ClusterRef
from worker.errors import NotFound
from worker.jobrecords import JobRecord
from worker.records import read_record
from worker.tenants import Tenant


class JobWaits:
    """Reads and waits on job records for HTTP callers."""

    def __init__(self, eksops: EksOps) -> None:
        self.eksops = eksops

    async def recorded_status(
        self,
        job_name: str,
        namespace: str,
        cluster: dict[str, Any] | None,
        tenant: Tenant | None = None,
    ) -> dict[str, Any] | None:
        """Return the Job's status from its record; None when a queued read must answer.

        Raises NotFound (the seed's text) for a Job the tracker saw deleted, and for a
        Job another tenant's request made (as the worker answers for its label).
        """
        ref = ClusterRef.model_validate(cluster) if cluster else None

        def read() -> tuple[bool, JobRecord | None, bool]:
            key = jobs.cluster_key(self.eksops.redis, ref)
            covered = jobs.coverage(self.eksops.redis, key).current
            record = jobs.job_record(self.eksops.redis, key, namespace, job_name) if key else None
            return covered, record, record is not None and not self._may_see(tenant, record)

        covered, record, hidden = await anyio.to_thread.run_sync(read)
        if not covered or record is None:
            return None
        if hidden:
            raise NotFound(f"Job {job_name} not found in namespace {namespace}")
        if record.phase == "deleted":
            raise NotFound(
                f"Job {job_name} not found in namespace {namespace}",
                details={"job": record.status_body()},
            )
        return record.status_body()

    def _may_see(self, tenant: Tenant | None, record: JobRecord) -> bool:
        """Whether ``tenant`` may read the Job: by the tenant of the request that made it
        while that request's record lasts, then by the Job's tenant label (which the
        producer sets for a tenant's Jobs, whatever the manifest said)."""
        if tenant is None or tenant.unrestricted:
            return True
        maker = read_record(self.eksops.redis, record.request_id) if record.request_id else None
        if maker is not None:
            return tenant.may_see(maker.tenant)
        return record.tenant is None or tenant.may_see(record.tenant)

    async def key_of(
        self, request_id: str | None, result: dict[str, Any], cluster: dict[str, Any] | None
    ) -> str | None:
        """Return the record key of the Job a request made or read."""

        def read() -> str | None:
            if request_id is not None:
                record = self.eksops.job_of(request_id)
                if record:
                    return record
            ref = ClusterRef.model_validate(cluster) if cluster else None
            key = jobs.cluster_key(self.eksops.redis, ref)
            if key is None or not result.get("job_name"):
                return None
            return jobrecords.job_key(key, result.get("namespace", "default"), result["job_name"])

        return await anyio.to_thread.run_sync(read)

    async def wait_for_end(
        self, key: str, seconds: float, disconnected: Callable[[], Awaitable[bool]]
    ) -> JobRecord | None:
        """Return the record once the Job has ended, or as it is when time runs out."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        notifier = self.eksops.notifier
        subscription = await anyio.to_thread.run_sync(
            notifier.subscribe, jobrecords.notify_channel(key)
        )

        def wake() -> None:
            loop.call_soon_threadsafe(woken.set)

        subscription.on_wake(wake)
        deadline = time.monotonic() + seconds
        end = jobs.EndWatch()
        try:
            while True:
                woken.clear()
                record = await anyio.to_thread.run_sync(jobrecords.read_job, self.eksops.redis, key)
                now = time.monotonic()
                remaining = deadline - now
                if end.done(record, now) or remaining <= 0 or await disconnected():
                    return record
                with anyio.move_on_after(min(remaining, 1.0)):
                    await woken.wait()
        finally:
            subscription.close()
