"""Every Prometheus metric eksops exports: one declaration each (name, labels, buckets).

Names follow Prometheus's conventions: the ``eksops_`` prefix, base units (seconds),
``_total`` for counters. Labels are bounded: ``operation`` (the five of
``worker.catalog``), ``lane`` (``interactive`` | ``bulk``), ``outcome`` (``succeeded``
| ``failed`` | ``cancelled``), an error ``code`` (``worker.errors``), a Kubernetes ``verb``,
``resource`` and status ``code``, a ``cluster`` (``name@region``: a fleet has a few),
a ``tenant`` (the tenants of ``GATEWAY_KEYS_FILE``: an operator's list) and an audit
``reason`` (an error code); never a request, batch or Job name.

Two kinds:

* **per process** (counters and histograms, below): each process counts what it did;
  workers export them on ``WORKER_METRICS_PORT`` (``worker.exposition``), the gateway
  on ``/metrics``; Prometheus sums them over instances;
* **fleet gauges** (:class:`FleetCollector`): the backlog (``worker.queues``), live
  workers, each cluster's limiter and job tracker, read from Redis when scraped. Every
  process would report the same values, so only the gateway serves them.

``deploy/`` (dashboard, alert rules) uses only names declared here; a test checks it.
Pure prometheus_client: operations, the engine and producers all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# No ``_created`` series beside each counter and histogram: they double the series count
# for a timestamp nobody graphs (Prometheus 2's rate() does not need it).
disable_created_metrics()  # type: ignore[no-untyped-call]

_SECONDS_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SECONDS_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: The ``lane`` label's values (``worker.delivery.lanes`` names its lanes the same).
INTERACTIVE, BULK = "interactive", "bulk"


def lane(bulk: bool) -> str:
    """Return the ``lane`` label of bulk (or interactive) work."""
    return BULK if bulk else INTERACTIVE


# --- requests (producers count submissions, workers the rest) -----------------------

REQUESTS_SUBMITTED = Counter(
    "eksops_requests_submitted_total",
    "Requests enqueued (new request IDs; duplicates are not counted).",
    ["operation", "lane"],
)
REQUESTS_STARTED = Counter(
    "eksops_requests_started_total",
    "Request executions started by workers (a redelivered request counts again).",
    ["operation", "lane"],
)
REQUESTS_ENDED = Counter(
    "eksops_requests_ended_total",
    "Requests that ended, by outcome (cancelled: counted by the process that cancelled).",
    ["operation", "lane", "outcome"],
)
REQUEST_QUEUED = Histogram(
    "eksops_request_queued_seconds",
    "From the request's message being enqueued to its execution starting.",
    ["operation", "lane"],
    buckets=_SECONDS_SLOW,
)
REQUEST_RUN = Histogram(
    "eksops_request_run_seconds",
    "From a request's execution starting to its outcome being stored (retries included).",
    ["operation", "lane", "outcome"],
    buckets=(*_SECONDS_FAST, 30.0, 60.0, 300.0),
)
REQUEST_RETRIES = Counter(
    "eksops_request_retries_total",
    "Transient failures retried in place, by error code.",
    ["operation", "code"],
)
CHUNK_REQUESTS = Histogram(
    "eksops_chunk_requests",
    "Requests carried by each chunk message a worker ran.",
    ["operation"],
    buckets=(1, 2, 4, 8, 12, 16, 32, 64),
)

# --- tenants (every audited call: the gateway's, and library callers naming a tenant) ---

TENANT_CALLS = Counter(
    "eksops_tenant_calls_total",
    "Audited calls by tenant ('none': no known key), outcome and refusal reason.",
    ["tenant", "outcome", "reason"],
)


def tenant_call(tenant: str | None, outcome: str, reason: str | None) -> None:
    """Count one audited call (``reason``: its refusal's error code, else ``none``)."""
    TENANT_CALLS.labels(tenant or "none", outcome, reason or "none").inc()


# --- the Kubernetes API ---------------------------------------------------------------

KUBERNETES_REQUESTS = Counter(
    "eksops_kubernetes_requests_total",
    "Calls to the Kubernetes API, by verb, resource and HTTP status (error: no answer).",
    ["verb", "resource", "code"],
)
KUBERNETES_LATENCY = Histogram(
    "eksops_kubernetes_request_duration_seconds",
    "Latency of Kubernetes API calls (until the response headers; watches excluded).",
    ["verb", "resource"],
    buckets=_SECONDS_FAST,
)
LIMITER_WAIT = Histogram(
    "eksops_limiter_wait_seconds",
    "Time a call waited for the fleet-wide limiter's token and in-flight slot.",
    ["lane"],
    buckets=(0.0, *_SECONDS_FAST, 30.0, 60.0),
)
FLEET_PAUSES = Counter(
    "eksops_fleet_pauses_total",
    "Fleet-wide pauses of a cluster's calls after it answered 429.",
    ["cluster"],
)
TOKEN_MINTS = Counter(
    "eksops_token_mints_total",
    "EKS bearer tokens minted (presigned STS GetCallerIdentity).",
)
JOB_OUTCOMES = Counter(
    "eksops_job_outcomes_total",
    "Jobs the tracker saw end, by phase and reason (the Job's condition reason).",
    ["phase", "reason"],
)

# --- fleet gauges, read from Redis when scraped -----------------------------------------

QUEUE_MESSAGES = "eksops_queue_messages"
QUEUE_OLDEST_AGE = "eksops_queue_oldest_age_seconds"
QUEUE_HELD = "eksops_queue_held_messages"
QUEUE_OLDEST_HELD = "eksops_queue_oldest_held_seconds"
QUEUE_BULK_GROUPS = "eksops_queue_bulk_groups"
WORKERS_LIVE = "eksops_workers_live"
LIMITER_TOKENS = "eksops_limiter_tokens"
LIMITER_IN_FLIGHT = "eksops_limiter_in_flight"
LIMITER_WAITING = "eksops_limiter_waiting"
LIMITER_PAUSED = "eksops_limiter_paused_seconds"
TRACKER_WATCHING = "eksops_tracker_watching"
TRACKER_LAG = "eksops_tracker_lag_seconds"

#: Every fleet gauge: name -> (help, labels).
FLEET_GAUGES: dict[str, tuple[str, Sequence[str]]] = {
    QUEUE_MESSAGES: ("Messages waiting in the lane.", ["lane"]),
    QUEUE_OLDEST_AGE: ("Age of the lane's oldest waiting message (0: none).", ["lane"]),
    QUEUE_HELD: ("Messages taken by workers and not acknowledged yet.", ["lane"]),
    QUEUE_OLDEST_HELD: ("How long the longest-held unacknowledged message has been held.", []),
    QUEUE_BULK_GROUPS: ("Bulk groups (batches) with messages waiting.", []),
    WORKERS_LIVE: ("Workers that announced themselves in the last 15 seconds.", []),
    LIMITER_TOKENS: ("Tokens left in the cluster's fleet-wide API budget.", ["cluster"]),
    LIMITER_IN_FLIGHT: ("Calls to the cluster holding an in-flight slot.", ["cluster"]),
    LIMITER_WAITING: ("Callers in line for an in-flight slot.", ["cluster"]),
    LIMITER_PAUSED: ("Seconds left of the cluster's pause after a 429 (0: none).", ["cluster"]),
    TRACKER_WATCHING: ("1 while the cluster's job tracker covers it, else 0.", ["cluster"]),
    TRACKER_LAG: ("Seconds since the cluster's job tracker was last heard from.", ["cluster"]),
}


#: Every per-process metric.
PER_PROCESS = (
    REQUESTS_SUBMITTED,
    REQUESTS_STARTED,
    REQUESTS_ENDED,
    REQUEST_QUEUED,
    REQUEST_RUN,
    REQUEST_RETRIES,
    CHUNK_REQUESTS,
    TENANT_CALLS,
    KUBERNETES_REQUESTS,
    KUBERNETES_LATENCY,
    LIMITER_WAIT,
    FLEET_PAUSES,
    TOKEN_MINTS,
    JOB_OUTCOMES,
)
_SERIES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def declared_names() -> set[str]:
    """Return the name of every series eksops exports (a counter's ``_total``, a
    histogram's ``_bucket``, ``_sum`` and ``_count``, each fleet gauge)."""
    names = set(FLEET_GAUGES)
    for metric in PER_PROCESS:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SERIES[family.type])
    return names


# --- instrumentation helpers (one line at each call site) ----------------------------------


def kubernetes_call(verb: str, resource: str, code: str, seconds: float) -> None:
    """Count one Kubernetes API call and observe its latency."""
    KUBERNETES_REQUESTS.labels(verb, resource, code).inc()
    KUBERNETES_LATENCY.labels(verb, resource).observe(seconds)


#: The Job condition reasons counted by name; any other is counted as ``other``.
JOB_REASONS = frozenset(
    {
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "PodFailurePolicy",
        "MaxFailedIndexesExceeded",
        "FailedIndexes",
        "SuccessPolicy",
        "CompletionsReached",
    }
)


def job_ended(phase: str, reason: str) -> None:
    """Count a Job's end by phase and (bounded) reason; ``none`` when it has none."""
    label = reason if reason in JOB_REASONS else ("none" if not reason else "other")
    JOB_OUTCOMES.labels(phase, label).inc()


def cancelled(operation: str, lane: str) -> None:
    """Count a request cancelled before it ran (by the process that cancelled it)."""
    REQUESTS_ENDED.labels(operation, lane, "cancelled").inc()


def submitted(operation: str, lane: str, count: int) -> None:
    """Count ``count`` new requests of ``operation`` enqueued on ``lane``."""
    if count:
        REQUESTS_SUBMITTED.labels(operation, lane).inc(count)


# --- the fleet collector -----------------------------------------------------------------


class _Lane(Protocol):
    @property
    def lane(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def oldest_age_seconds(self) -> float | None: ...
    @property
    def held(self) -> int: ...
    @property
    def groups(self) -> int | None: ...


class _Limiter(Protocol):
    @property
    def cluster(self) -> str: ...
    @property
    def tokens(self) -> float | None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def paused_for_seconds(self) -> float: ...


class _Backlog(Protocol):
    @property
    def lanes(self) -> Sequence[_Lane]: ...
    @property
    def oldest_held_seconds(self) -> float | None: ...
    @property
    def live_workers(self) -> int: ...
    @property
    def clusters(self) -> Sequence[_Limiter]: ...


class _Tracker(Protocol):
    @property
    def cluster(self) -> str | None: ...
    @property
    def current(self) -> bool: ...
    @property
    def age_seconds(self) -> float | None: ...


class FleetCollector(Collector):
    """The fleet gauges, read from Redis at each scrape (one script and a few reads)."""

    def __init__(
        self,
        read_backlog: Callable[[], _Backlog],
        read_trackers: Callable[[], Iterable[_Tracker]] = list,
    ) -> None:
        self._read_backlog = read_backlog
        self._read_trackers = read_trackers

    def describe(self) -> Iterable[Metric]:
        """Declare the gauges without reading Redis (registration must not call out)."""
        return [GaugeMetricFamily(name, text, labels=labels) for name, (text, labels) in _help()]

    def collect(self) -> Iterator[Metric]:
        """Read the backlog, limiters and trackers; yield one family per gauge."""
        families = {
            name: GaugeMetricFamily(name, text, labels=labels) for name, (text, labels) in _help()
        }
        backlog = self._read_backlog()
        for lane in backlog.lanes:
            families[QUEUE_MESSAGES].add_metric([lane.lane], lane.waiting)
            families[QUEUE_OLDEST_AGE].add_metric([lane.lane], lane.oldest_age_seconds or 0.0)
            families[QUEUE_HELD].add_metric([lane.lane], lane.held)
            if lane.groups is not None:
                families[QUEUE_BULK_GROUPS].add_metric([], lane.groups)
        families[QUEUE_OLDEST_HELD].add_metric([], backlog.oldest_held_seconds or 0.0)
        families[WORKERS_LIVE].add_metric([], backlog.live_workers)
        for limiter in backlog.clusters:
            labels = [limiter.cluster]
            if limiter.tokens is not None:
                families[LIMITER_TOKENS].add_metric(labels, limiter.tokens)
            families[LIMITER_IN_FLIGHT].add_metric(labels, limiter.in_flight)
            families[LIMITER_WAITING].add_metric(labels, limiter.waiting)
            families[LIMITER_PAUSED].add_metric(labels, limiter.paused_for_seconds)
        for tracker in self._read_trackers():
            if tracker.cluster is None:
                continue
            families[TRACKER_WATCHING].add_metric([tracker.cluster], float(tracker.current))
            if tracker.age_seconds is not None:
                families[TRACKER_LAG].add_metric([tracker.cluster], tracker.age_seconds)
        yield from families.values()


def _help() -> Iterator[tuple[str, tuple[str, Sequence[str]]]]:
    return iter(FLEET_GAUGES.items())
