"""One benchmark run: bring the stack up, run every phase in order, collect figures.

Order matters on a shared two-core machine: all workers start together first (their
start-up CPU would otherwise disturb a measurement), then each phase runs with only
its own worker busy, and each worker is stopped as soon as its phases are done.
Every scenario has its own Redis database, so an idle worker never takes another
scenario's messages. Direct and eksops rounds alternate, so a noisy neighbour hits
both sides alike.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import accept, burst, ceiling, costs, direct, e2e, events, flow, profiling, tracking
from bench.loop import LoopResult, percentile
from bench.plan import Plan
from bench.procs import CpuMeter, CpuUse, rss_bytes
from bench.stack import Kubesim, Valkey, Worker, worker_env
from bench.workload import create_namespaces, direct_clusters
from producer import EksOps
from producer.queue import make_app
from producer.settings import ProducerSettings
from worker.settings import QueueSettings

CLUSTER = "bench"
# Redis databases, one per scenario.
DB_ACCEPT, DB_NOOP, DB_BURST, DB_TRACKING = 1, 2, 3, 15
DB_E2E = {8: 4, 32: 5}
DB_EVENTS = 6


def _db_for(concurrency: int) -> int:
    return DB_E2E.get(concurrency, 6 + concurrency % 8)


def _queue(url: str) -> QueueSettings:
    return QueueSettings(
        _env_file=None,
        redis_url=url,
        celery_broker_url=None,
        celery_result_backend=None,
    )


def _eksops(url: str) -> EksOps:
    return EksOps(settings=ProducerSettings(_env_file=None), queue=_queue(url))


def _loop_json(result: LoopResult) -> dict[str, Any]:
    return {
        "rate": result.rate,
        "completed": result.completed,
        "window_seconds": result.window_seconds,
        "p50_ms": result.p(0.50),
        "p95_ms": result.p(0.95),
        "p99_ms": result.p(0.99),
        "errors": result.errors[:5],
        "error_count": len(result.errors),
    }


def _pooled(results: list[LoopResult]) -> LoopResult:
    return LoopResult(
        concurrency=results[0].concurrency,
        completed=sum(r.completed for r in results),
        window_seconds=sum(r.window_seconds for r in results),
        latencies_ms=[value for r in results for value in r.latencies_ms],
        errors=[error for r in results for error in r.errors],
    )


def _cpu_json(use: CpuUse, tasks: int) -> dict[str, Any]:
    return {
        "per_task_ms": use.per_task_ms(tasks),
        "busy_cores": use.busy_cores(),
        "machine_busy_cores": use.machine_busy_cores(),
        "wall_seconds": use.wall_seconds,
    }


def _say(message: str) -> None:
    print(f"bench: {message}", flush=True)


class Run:
    """A benchmark run in its own temp directory; use as a context manager."""

    def __init__(self, plan: Plan, *, profile: bool, keep: bool) -> None:
        self.plan = plan
        self.profile = profile and profiling.py_spy() is not None
        self.results: dict[str, Any] = {"notes": list(plan.notes)}
        if profile and not self.profile:
            self.results["notes"].append("--profile skipped: py-spy is not installed")
        self._keep = keep
        self._stack = contextlib.ExitStack()
        self.directory = Path(tempfile.mkdtemp(prefix="eksops-bench-"))
        self.workers: dict[str, Worker] = {}

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for worker in self.workers.values():
            worker.stop()
        self._stack.close()
        if not self._keep:
            import shutil  # noqa: PLC0415

            shutil.rmtree(self.directory, ignore_errors=True)

    # --- stack ---------------------------------------------------------------------

    def start(self) -> None:
        """Start Valkey, kubesim and every worker; wait until all are ready."""
        started = time.perf_counter()
        plan = self.plan
        self.valkey = Valkey(self.directory)
        self._stack.callback(self.valkey.child.stop)
        self.kubesim = Kubesim(self.directory, cluster=CLUSTER, latency_ms=plan.latency_ms)
        self._stack.callback(self.kubesim.child.stop)
        # boto3 in this process (the direct baseline) reads kubesim's endpoint and CA here.
        os.environ.update(self.kubesim.env)
        env = self.kubesim.env
        specs: dict[str, tuple[int, dict[str, str], str]] = {
            "noop": (
                DB_NOOP,
                {
                    "REDIS_URL": self.valkey.url(DB_NOOP),
                    "WORKER_CONCURRENCY": str(plan.concurrencies[0]),
                    "LOG_LEVEL": "WARNING",
                },
                "bench.noop_app",
            ),
        }
        for concurrency in plan.concurrencies:
            db = _db_for(concurrency)
            specs[f"e2e-c{concurrency}"] = (
                db,
                worker_env(
                    self.valkey.url(db), env, concurrency=concurrency, task_events=plan.task_events
                ),
                "worker",
            )
        for index in range(plan.burst_workers):
            specs[f"burst-{index + 1}"] = (
                DB_BURST,
                worker_env(
                    self.valkey.url(DB_BURST),
                    env,
                    concurrency=plan.burst_worker_concurrency,
                    rate_qps=plan.burst_qps,
                    burst=plan.burst_bucket,
                    max_in_flight=plan.burst_max_in_flight,
                ),
                "worker",
            )
        for name, (_db, worker_environment, app) in specs.items():
            processes = plan.worker_processes if name.startswith("e2e-") else 1
            self.workers[name] = Worker(
                self.directory, name, worker_environment, app=app, processes=processes
            )
        self.clusters = {
            concurrency: direct_clusters(env, pool_size=concurrency)
            for concurrency in plan.concurrencies
        }
        self.client = self.clusters[plan.concurrencies[0]].get()
        create_namespaces(
            self.client,
            ["bench-accept", "bench-burst", "bench-flow", "bench-memory", "bench-tracking"]
            + [f"bench-{kind}-c{c}" for c in plan.concurrencies for kind in ("direct", "e2e")],
        )
        for name, worker in self.workers.items():
            worker.wait_ready(self.valkey.url(specs[name][0]))
        self.results["startup_seconds"] = time.perf_counter() - started
        self.results["worker_rss_mib_at_start"] = {
            name: rss_bytes(worker.pid) / 2**20 for name, worker in self.workers.items()
        }
        _say(f"stack up in {self.results['startup_seconds']:.1f}s ({self.directory})")

    def _stop_worker(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        if worker is not None:
            worker.stop()

    def _meter(self, worker: str | None) -> CpuMeter:
        pids = {"harness": os.getpid(), "kubesim": self.kubesim.child.pid}
        pids["valkey"] = self.valkey.child.pid
        if worker is not None:
            pids["worker"] = self.workers[worker].pid
        return CpuMeter(pids).start()

    # --- phases --------------------------------------------------------------------

    def run_accept(self) -> None:
        """Bulk accept of create-jobs vs raw pipelined writes (no worker on this DB)."""
        eksops = _eksops(self.valkey.url(DB_ACCEPT))
        client = self.valkey.client(DB_ACCEPT)
        meter = CpuMeter({"producer": os.getpid(), "valkey": self.valkey.child.pid})
        result = accept.run_accept(
            eksops, client, meter, items=self.plan.accept_items, namespace="bench-accept"
        )
        eksops.close()
        self.results["accept"] = {
            "items": result.items,
            "accepted": result.accepted,
            "message_bytes": result.message_bytes,
            "seconds": result.seconds,
            "rate": result.rate,
            "fsync_confirmed": result.fsync_confirmed,
            "raw_rate": result.raw_rate,
            "raw_durable_rate": result.raw_durable_rate,
            "raw_variadic_rate": result.raw_variadic_rate,
            "cpu_us_per_item": result.cpu_us_per_item,
            "ratio": result.rate / result.raw_rate,
        }
        _say(f"accept {result.rate:,.0f}/s; raw pipelined {result.raw_rate:,.0f}/s")

    def run_events(self) -> None:
        """CPU per request of a chunk item's task events (Flower's view), delivered."""
        app = make_app(_queue(self.valkey.url(DB_EVENTS)))
        meter = CpuMeter({"harness": os.getpid(), "valkey": self.valkey.child.pid})
        try:
            result = events.run_events(app, meter, requests=self.plan.event_requests)
        finally:
            app.close()
        self.results["events"] = {
            "requests": result.requests,
            "seconds": result.seconds,
            "cpu_us_per_request": result.cpu_us_per_request,
            "events_expected": result.events_expected,
            "events_received": result.events_received,
        }
        cost = ", ".join(f"{k} {v:.0f} us" for k, v in result.cpu_us_per_request.items())
        _say(f"task events of chunk items: {cost} per request")

    def run_ceiling(self) -> None:
        """Raw Celery no-op drain rate and round trip, then stop the no-op worker."""
        plan = self.plan
        client = self.valkey.client(DB_NOOP)
        app = make_app(_queue(self.valkey.url(DB_NOOP)))
        watcher = e2e.ResultWatcher(self.valkey.client(DB_NOOP))
        meter = self._meter("noop")
        try:
            result = ceiling.run_ceiling(
                app,
                client,
                watcher,
                tasks=plan.noop_tasks,
                concurrency=plan.concurrencies[0],
                duration=plan.noop_window_seconds,
                warmup=plan.warmup_seconds / 2,
            )
        finally:
            watcher.close()
            app.close()
        use = meter.stop()
        self._stop_worker("noop")
        self.results["ceiling"] = {
            "concurrency": plan.concurrencies[0],
            "tasks": result.tasks,
            "seconds": result.seconds,
            "rate": result.rate,
            "loop": _loop_json(result.loop),
            "cpu": _cpu_json(use, result.tasks + result.loop.completed),
        }
        _say(f"celery no-op ceiling {result.rate:,.0f}/s (p50 {result.loop.p(0.5):.1f} ms)")

    def run_throughput(self, concurrency: int) -> None:
        """Direct vs eksops at ``concurrency``: closed loops, a drain, CPU per process."""
        plan = self.plan
        name = f"e2e-c{concurrency}"
        url = self.valkey.url(_db_for(concurrency))
        eksops = _eksops(url)
        watcher = e2e.ResultWatcher(self.valkey.client(_db_for(concurrency)))
        client = self.clusters[concurrency].get()
        stages = e2e.Stages()
        directs: list[LoopResult] = []
        e2es: list[LoopResult] = []
        cpu_direct: list[CpuUse] = []
        cpu_e2e: list[CpuUse] = []
        try:
            for _ in range(plan.rounds):
                meter = self._meter(None)
                directs.append(
                    direct.run_direct(
                        client,
                        namespace=f"bench-direct-c{concurrency}",
                        concurrency=concurrency,
                        duration=plan.window_seconds,
                        warmup=plan.warmup_seconds,
                    )
                )
                cpu_direct.append(meter.stop())
                meter = self._meter(name)
                e2es.append(
                    e2e.run_e2e(
                        eksops,
                        watcher,
                        namespace=f"bench-e2e-c{concurrency}",
                        concurrency=concurrency,
                        duration=plan.window_seconds,
                        warmup=plan.warmup_seconds,
                        stages=stages,
                    )
                )
                cpu_e2e.append(meter.stop())
            meter = self._meter(name)
            drained = e2e.run_drain(
                eksops,
                self.valkey.client(_db_for(concurrency)),
                namespace=f"bench-e2e-c{concurrency}",
                tasks=plan.drain_tasks,
            )
            cpu_drain = meter.stop()
            profile = (
                self._profile(eksops, watcher, concurrency, drained.rate) if self.profile else None
            )
        finally:
            watcher.close()
            eksops.close()
        pooled_direct, pooled_e2e = _pooled(directs), _pooled(e2es)
        self.results.setdefault("throughput", {})[str(concurrency)] = {
            "direct": _loop_json(pooled_direct),
            "e2e": _loop_json(pooled_e2e),
            "rounds": {
                "direct": [r.rate for r in directs],
                "e2e": [r.rate for r in e2es],
            },
            "drain": {"tasks": drained.tasks, "seconds": drained.seconds, "rate": drained.rate},
            "ratio_closed_loop": pooled_e2e.rate / pooled_direct.rate,
            "ratio_drain": drained.rate / pooled_direct.rate,
            "added_ms": {
                label: pooled_e2e.p(q) - pooled_direct.p(q)
                for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
            "stages_p50_ms": stages.p(0.5),
            "stages_p95_ms": stages.p(0.95),
            "cpu": {
                "direct": _cpu_json(_sum_cpu(cpu_direct), pooled_direct.completed),
                "e2e": _cpu_json(_sum_cpu(cpu_e2e), pooled_e2e.completed),
                "drain": _cpu_json(cpu_drain, drained.tasks),
            },
            "profile": profile,
        }
        _say(
            f"c={concurrency}: direct {pooled_direct.rate:,.0f}/s, eksops closed loop "
            f"{pooled_e2e.rate:,.0f}/s, drain {drained.rate:,.0f}/s; "
            f"p50 {pooled_direct.p(0.5):.1f} vs {pooled_e2e.p(0.5):.1f} ms"
        )

    def _profile(
        self, eksops: EksOps, watcher: e2e.ResultWatcher, concurrency: int, drain_rate: float
    ) -> dict[str, Any]:
        """Extra rounds (not counted) while py-spy samples the workers: closed loop, drain."""
        seconds = self.plan.profile_seconds
        name = f"e2e-c{concurrency}"
        namespace = f"bench-e2e-c{concurrency}"
        recorder = self._recorder(name, "loop", seconds)
        loop = e2e.run_e2e(
            eksops,
            watcher,
            namespace=namespace,
            concurrency=concurrency,
            duration=seconds,
            warmup=0.0,
        )
        profiles = {"closed loop": _profile_json(recorder.result(), loop.completed)}
        recorder = self._recorder(name, "drain", seconds)
        drained = e2e.run_drain(
            eksops,
            self.valkey.client(_db_for(concurrency)),
            namespace=namespace,
            tasks=int(drain_rate * seconds),  # about as long as py-spy samples
        )
        profiles["drain"] = _profile_json(recorder.result(), drained.tasks)
        return profiles

    def _recorder(self, worker: str, kind: str, seconds: float) -> profiling.Recorder:
        return profiling.Recorder(
            self.workers[worker].pid,
            self.directory / f"profile-{worker}-{kind}.txt",
            seconds=seconds,
        )

    def run_costs(self) -> None:
        """Polls of a finished request, then worker memory over many tasks."""
        plan = self.plan
        concurrency = plan.concurrencies[-1]
        name = f"e2e-c{concurrency}"
        db = _db_for(concurrency)
        eksops = _eksops(self.valkey.url(db))
        client = self.valkey.client(db)
        try:
            sample = next(client.scan_iter(match="celery-task-meta-*", count=1000)).decode()
            polls = costs.run_polls(
                eksops,
                self.kubesim,
                sample.removeprefix("celery-task-meta-"),
                polls=plan.polls,
            )
            self.results["polls"] = {
                "polls": polls.polls,
                "per_poll_ms": polls.per_poll_ms,
                "api_calls_during": polls.api_calls_during,
                "state": polls.state,
            }
            self.kubesim.admin.configure(latency_ms=0)
            memory = costs.run_memory(
                eksops,
                client,
                self.workers[name].pid,
                marks=list(plan.memory_marks),
                namespace="bench-memory",
                progress=True,
            )
        finally:
            self.kubesim.admin.configure(latency_ms=plan.latency_ms)
            eksops.close()
        self._stop_worker(name)
        self.results["memory"] = {
            "worker": name,
            "marks_mib": {str(mark): value for mark, value in memory.marks.items()},
            "curve": memory.curve,
            "growth": memory.growth,
            "tasks": memory.tasks,
            "seconds": memory.seconds,
            "rate": memory.tasks / memory.seconds if memory.seconds else 0.0,
            "kubesim_latency_ms": 0,
        }
        _say(f"memory {memory.marks} MiB (growth {memory.growth:+.1%})")

    def run_burst(self) -> None:
        """A burst under the shared limiter, drained by several workers, then audited."""
        plan = self.plan
        eksops = _eksops(self.valkey.url(DB_BURST))
        meter = self._meter(None)
        try:
            result = burst.run_burst(
                eksops,
                self.valkey.client(DB_BURST),
                self.kubesim,
                self.client,
                items=plan.burst_items,
                namespace="bench-burst",
                rate_limit=plan.burst_qps,
                burst=plan.burst_bucket,
            )
        finally:
            eksops.close()
        use = meter.stop()
        self.results["burst"] = {
            **{key: getattr(result, key) for key in result.__dataclass_fields__},
            "api_rate": result.api_rate,
            "floor_seconds": result.floor_seconds,
            "workers": plan.burst_workers,
            "worker_concurrency": plan.burst_worker_concurrency,
            "max_in_flight": plan.burst_max_in_flight,
            "cpu_busy_cores_excluding_workers": use.busy_cores(),
        }
        _say(
            f"burst of {result.accepted:,} drained in {result.drain_seconds:.1f}s "
            f"({result.api_rate:.0f} creates/s, limit {plan.burst_qps:.0f}/s); "
            f"lost {result.lost}, duplicates {result.duplicates}"
        )

    def run_flow(self) -> None:
        """Singles beside a large batch, a late batch, a cancel: on the burst's workers."""
        plan = self.plan
        eksops = _eksops(self.valkey.url(DB_BURST))
        try:
            result = flow.run_flow(
                eksops,
                self.client,
                namespace="bench-flow",
                singles=plan.flow_singles,
                burst_items=plan.flow_items,
                rate_limit=plan.burst_qps,
                created=self.kubesim.creates,
            )
        finally:
            eksops.close()
        for index in range(plan.burst_workers):
            self._stop_worker(f"burst-{index + 1}")
        self.results["flow"] = {
            "direct_ms": result.stats(result.unloaded_direct_ms),
            "eksops_ms": result.stats(result.unloaded_eksops_ms),
            "eksops_stages_p50_ms": result.stage_p50(),
            "during_burst_stages_p50_ms": result.stage_p50(during=True),
            "during_burst_ms": result.stats(result.during_burst_ms),
            "added_p50_ms": result.added_p50_ms,
            "interactive_bound_ms": result.interactive_bound_ms,
            "burst_items": result.burst_items,
            "late_batch_first_start_s": result.late_batch_first_start_s,
            "large_batch_succeeded_when_late_started": (
                result.large_batch_succeeded_when_late_started
            ),
            "cancel_call_s": result.cancel_call_s,
            "cancel_settled_s": result.cancel_settled_s,
            "cancelled": result.cancelled,
            "running_at_cancel": result.running_at_cancel,
            "ended_at_cancel": result.ended_at_cancel,
            "created_after_cancel": result.created_after_cancel,
        }
        _say(
            f"flow: added p50 {result.added_p50_ms:.1f} ms; single during batch p95 "
            f"{percentile(result.during_burst_ms, 0.95):.0f} ms; late batch started after "
            f"{result.late_batch_first_start_s:.2f}s; {result.created_after_cancel} created "
            "after the cancel"
        )

    def run_tracking(self) -> None:
        """The job tracker: lag and API calls over a burst of Jobs ending, then memory.

        Its worker (tracking on, no task sent to its database; every other worker runs
        with tracking off) starts only now and stops after: it follows every eksops Job
        of the cluster and must not share the CPU with the other phases.
        """
        plan = self.plan
        env = {
            **worker_env(self.valkey.url(DB_TRACKING), self.kubesim.env, concurrency=1),
            "JOB_TRACKING": "true",
        }
        self.workers["tracker"] = Worker(self.directory, "tracker", env)
        self.workers["tracker"].wait_ready(self.valkey.url(DB_TRACKING))
        self.kubesim.admin.configure(latency_ms=0)
        try:
            result = tracking.run_tracking(
                self.client,
                self.valkey.client(DB_TRACKING),
                self.kubesim,
                self.workers["tracker"].pid,
                namespace="bench-tracking",
                lag_jobs=plan.tracking_jobs,
                memory_jobs=plan.tracking_memory_jobs,
                duration=plan.tracking_seconds,
                progress=_say,
            )
        finally:
            self.kubesim.admin.configure(latency_ms=plan.latency_ms)
        self._stop_worker("tracker")
        marks = sorted(result.rss_mib)
        self.results["tracking"] = {
            "jobs": result.jobs,
            "create_seconds": result.create_seconds,
            "end_window_seconds": result.end_window_seconds,
            "missing": result.missing,
            "lag_woken_ms": {
                label: percentile(result.lag_woken_ms, q)
                for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
            },
            "lag_written_ms": {
                label: percentile(result.lag_written_ms, q)
                for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
            },
            "api_calls": result.api_calls,
            "api_calls_per_job": result.api_calls_per_job,
            "api_calls_all": result.api_calls_all,
            "api_calls_per_job_all": result.api_calls_per_job_all,
            "jobs_all": result.jobs_all,
            "rss_mib": {str(mark): result.rss_mib[mark] for mark in marks},
            "rss_growth": result.rss_mib[marks[-1]] / result.rss_mib[marks[0]] - 1,
            "record_bytes": result.record_bytes,
            "event_bytes": result.event_bytes,
            "memory_seconds": result.memory_seconds,
        }

    def run_tokens(self) -> None:
        """Distinct IAM tokens kubesim verified over the run, per process."""
        verified = int(self.kubesim.admin.tokens().get("verified", 0))
        # Clients that mint: one per eksops worker process, plus the harness's direct
        # clients (one per concurrency). The no-op worker never talks to the cluster.
        workers = len(self.plan.concurrencies) + self.plan.burst_workers + 1  # + the tracker
        processes = workers + len(self.plan.concurrencies)
        self.results["presigns"] = {
            "tokens_verified": verified,
            "processes": processes,
            "worker_processes": workers,
            "run_seconds": time.perf_counter() - self._t0,
            "per_process": verified / processes,
        }

    def run_all(self) -> dict[str, Any]:
        """Run every phase; return the results."""
        self._t0 = time.perf_counter()
        self.start()
        # First, on a cluster with no Job yet: the tracker would otherwise start by
        # listing every Job of the phases before (and the others run without it).
        self.run_tracking()
        self.run_accept()
        self.run_events()
        self.run_ceiling()
        for concurrency in self.plan.concurrencies:
            self.run_throughput(concurrency)
            if concurrency != self.plan.concurrencies[-1]:
                self._stop_worker(f"e2e-c{concurrency}")
        self.run_costs()
        self.run_burst()
        self.run_flow()
        self.run_tokens()
        self.results["wall_seconds"] = time.perf_counter() - self._t0
        return self.results


def _sum_cpu(uses: list[CpuUse]) -> CpuUse:
    total: dict[str, float] = {}
    for use in uses:
        for name, value in use.seconds.items():
            total[name] = total.get(name, 0.0) + value
    return CpuUse(
        sum(use.wall_seconds for use in uses), total, sum(use.machine_seconds for use in uses)
    )


def _profile_json(profile: profiling.Profile, tasks: int) -> dict[str, Any]:
    """A py-spy summary with the GIL time per task of the round it sampled."""
    return {
        "tasks": tasks,
        "samples": profile.samples,
        "gil_busy": profile.gil_busy,
        "gil_ms_per_task": profile.samples * 1000 / profile.rate / max(tasks, 1),
        "by_step": profile.by_step,
        "by_library": profile.by_library,
        "top_functions": profile.top_functions,
    }
