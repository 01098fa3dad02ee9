"""The job record: what eksops knows of a Job it created, kept in Redis beyond the Job.

A request ends when its operation ends; the Job lives on. The job tracker
(``worker.tracking``) follows every eksops Job with one watch per cluster and writes
here; status reads, waiters, batch views, the event stream and callbacks all read
what is written here, never the cluster. One hash per Job at
``eksops:job:<cluster>:<namespace>:<name>``:

* ``phase`` — ``pending | running | suspended | succeeded | failed | deleted``
  (``deleted``: the Job went away before its end was seen; a Job removed after it
  ended keeps its phase and gains ``removed_at``);
* ``job`` — JSON: uid, counts (active, succeeded, failed, ready, terminating), times,
  the failure ``reason`` and ``message``, conditions;
* ``pods`` — JSON: by pod name, why it is not running or why it failed (waiting
  reasons, scheduling message, each container's last termination);
* ``log`` — JSON: the tail of a failed container's log, captured when it failed;
* ``request_id``, ``batch_id``, ``tenant`` (its ``eksops.io/tenant`` label, which
  decides who may read it once its request record has expired), ``uid``,
  ``updated_at``, ``removed_at``.

Writes are Lua scripts fenced by the tracker's lease: a tracker that lost its lease
writes nothing. Each write keeps the batch's job counts (``eksops:batch:<id>:jobs``)
and failed-job list, the cluster's set of Jobs not yet ended, the request record's
link to its Job (``job``), publishes the transition for waiters and appends it to the
event stream (``worker.events``) in the same step, so none of them can disagree.
Pure redis-py; producers read with :func:`read_job`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.records import REQUEST_KEY_PREFIX
from worker.timestamps import iso_timestamp

JOB_KEY_PREFIX = "eksops:job:"
TRACKER_KEY_PREFIX = "eksops:tracker:"
NOTIFY_JOB_PREFIX = "eksops:notify:job:"
Phase = Literal["pending", "running", "suspended", "succeeded", "failed", "deleted"]
PHASES: tuple[Phase, ...] = ("pending", "running", "suspended", "succeeded", "failed", "deleted")
ENDED: frozenset[str] = frozenset({"succeeded", "failed", "deleted"})
#: The seed API's job states, by phase.
SEED_STATE: dict[str, str] = {
    "pending": "pending",
    "running": "running",
    "suspended": "suspended",
    "succeeded": "completed",
    "failed": "failed",
    "deleted": "unknown",
}


def job_key(cluster: str, namespace: str, name: str) -> str:
    """Return the Redis key of a Job's record (``cluster`` is ``name@region``)."""
    return f"{JOB_KEY_PREFIX}{cluster}:{namespace}:{name}"


def open_jobs_key(cluster: str) -> str:
    """Return the set of a cluster's Jobs whose end has not been seen."""
    return f"{TRACKER_KEY_PREFIX}{cluster}:open"


def tracker_key(cluster: str) -> str:
    """Return the hash of a cluster's tracker state (holder, resume points, heartbeat)."""
    return f"{TRACKER_KEY_PREFIX}{cluster}"


def lease_key(cluster: str) -> str:
    """Return the key naming the one worker tracking ``cluster`` now."""
    return f"{TRACKER_KEY_PREFIX}{cluster}:lease"


#: Every cluster eksops has touched (``name@region`` -> JSON name and region): tracked.
CLUSTERS_KEY = "eksops:tracker:clusters"
#: The workers' default cluster (``name@region``): what "the cluster" means to producers.
DEFAULT_CLUSTER_KEY = "eksops:tracker:default"


def register_cluster(redis: Any, key: str, *, name: str, region: str | None) -> None:
    """Note that eksops has touched cluster ``key``, so the fleet tracks its Jobs."""
    redis.hsetnx(CLUSTERS_KEY, key, json.dumps({"name": name, "region": region}))


def default_cluster(redis: Any) -> str | None:
    """Return the workers' default cluster (``name@region``), once a worker has said it."""
    value = redis.get(DEFAULT_CLUSTER_KEY)
    return value.decode() if isinstance(value, bytes) else value


def batch_jobs_key(batch_id: str) -> str:
    """Return the hash of a batch's Jobs counted by phase."""
    return f"eksops:batch:{batch_id}:jobs"


def batch_failed_jobs_key(batch_id: str) -> str:
    """Return the list of a batch's failed Jobs (record keys), in the order they failed."""
    return f"eksops:batch:{batch_id}:failed-jobs"


def notify_channel(key: str) -> str:
    """Return the pub/sub channel a Job's transitions are published on."""
    return NOTIFY_JOB_PREFIX + key


@dataclass(frozen=True)
class JobRecord:
    """A job record as read back."""

    key: str
    phase: str
    job: dict[str, Any] = field(default_factory=dict)
    pods: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] | None = None
    request_id: str | None = None
    batch_id: str | None = None
    tenant: str | None = None
    updated_at: str | None = None
    removed_at: str | None = None

    @property
    def ended(self) -> bool:
        """Return whether the Job will change no more (succeeded, failed or deleted)."""
        return self.phase in ENDED

    @property
    def settled(self) -> bool:
        """Whether the record says all it will about the Job's end: for a failed Job, its
        failed Pod's exit code and log tail too (the tracker follows Jobs and Pods in two
        watches, so the Job's end can be written a moment before them)."""
        if not self.ended or self.phase != "failed" or not self.job.get("failed"):
            return self.ended
        return bool(self.summary()["failed_pods"]) and self.log is not None

    @property
    def cluster(self) -> str:
        return self.key.removeprefix(JOB_KEY_PREFIX).rsplit(":", 2)[0]

    @property
    def namespace(self) -> str:
        return self.key.rsplit(":", 2)[1]

    @property
    def name(self) -> str:
        return self.key.rsplit(":", 1)[1]

    @classmethod
    def from_hash(cls, key: str, raw: dict[Any, Any]) -> JobRecord | None:
        """Parse an ``HGETALL`` reply; None when the Job was never seen (or expired)."""
        values = {_text(k): _text(v) for k, v in raw.items()}
        if "phase" not in values:
            return None
        return cls(
            key=key,
            phase=values["phase"],
            job=json.loads(values.get("job") or "{}"),
            pods=json.loads(values.get("pods") or "{}"),
            log=json.loads(values["log"]) if values.get("log") else None,
            request_id=values.get("request_id") or None,
            batch_id=values.get("batch_id") or None,
            tenant=values.get("tenant") or None,
            updated_at=values.get("updated_at"),
            removed_at=values.get("removed_at"),
        )

    def status_body(self) -> dict[str, Any]:
        """Return the seed's job-status body, with what the record adds (``summary``)."""
        job = self.job
        return {
            "job_name": self.name,
            "namespace": self.namespace,
            "state": SEED_STATE.get(self.phase, "unknown"),
            "active": job.get("active", 0),
            "succeeded": job.get("succeeded", 0),
            "failed": job.get("failed", 0),
            "start_time": iso_timestamp(job.get("start_time")),
            "completion_time": iso_timestamp(job.get("completion_time")),
            **self.summary(),
            "source": "tracker",
        }

    def summary(self) -> dict[str, Any]:
        """Return what status answers add to the seed's body: phase, reason, pods, log."""
        failed_pods = [
            {"pod": name, **pod} for name, pod in sorted(self.pods.items()) if pod.get("failed")
        ]
        waiting = [
            {"pod": name, "reason": pod["reason"], "message": pod.get("message")}
            for name, pod in sorted(self.pods.items())
            if pod.get("reason") and not pod.get("failed")
        ]
        return {
            "phase": self.phase,
            "reason": self.job.get("reason"),
            "message": self.job.get("message"),
            "ready": self.job.get("ready", 0),
            "request_id": self.request_id,
            "batch_id": self.batch_id,
            "tenant": self.tenant,
            "waiting": waiting,
            "failed_pods": failed_pods,
            "log_tail": self.log,
            "updated_at": self.updated_at,
            "removed_at": self.removed_at,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_job(redis: Any, key: str) -> JobRecord | None:
    """Return the record at ``key``; None if the Job was never seen (or its record expired)."""
    return JobRecord.from_hash(key, redis.hgetall(key))


def read_jobs(redis: Any, keys: list[str]) -> list[JobRecord | None]:
    """Return the records of ``keys``, in one pipelined read."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return [JobRecord.from_hash(key, raw) for key, raw in zip(keys, pipe.execute(), strict=True)]


# --- writes (the tracker's) -------------------------------------------------------

# KEYS: lease, record, open set, request record ('' when none), events stream, tracker
# hash. ARGV: holder, phase, job JSON, uid, now, TTL s, request ID, stream max length,
# the job key, a removal flag ('1': the Job is gone), the resume point to keep with it
# ('' for none), the Job's failure reason ('' for none), its tenant label ('' for
# none). Returns -1 when the lease is not ours, else 1 if the phase changed, 0 if not.
# The watch's resume point is written in the same step as what it resumes after.
UPSERT_JOB = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[6], 'jobs_rv', ARGV[11]) end
local ended = {succeeded = true, failed = true, deleted = true}
local record, key = KEYS[2], ARGV[9]
local old = redis.call('HGET', record, 'phase')
local olduid = redis.call('HGET', record, 'uid')
local phase = ARGV[2]
local batch = redis.call('HGET', record, 'batch_id')
if ARGV[10] == '1' then
  if old and ended[old] then
    redis.call('HSET', record, 'removed_at', ARGV[5])
    redis.call('SREM', KEYS[3], key)
    return 0
  end
  phase = 'deleted'
  redis.call('HSET', record, 'removed_at', ARGV[5])
elseif olduid and olduid ~= ARGV[4] then
  -- The same name, a new Job: the old record's counts leave with it.
  if batch then redis.call('HINCRBY', 'eksops:batch:' .. batch .. ':jobs', old, -1) end
  redis.call('DEL', record)
  old, batch = false, false
elseif old and ended[old] then
  return 0  -- an ended Job changes no more (a late event of an earlier generation)
end
if not batch and KEYS[4] ~= '' then
  batch = redis.call('HGET', KEYS[4], 'batch_id')
  if batch == '' then batch = false end
end
if ARGV[3] ~= '' then redis.call('HSET', record, 'job', ARGV[3]) end
redis.call('HSET', record, 'phase', phase, 'updated_at', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', record, 'uid', ARGV[4]) end
if ARGV[7] ~= '' then redis.call('HSET', record, 'request_id', ARGV[7]) end
if ARGV[13] ~= '' then redis.call('HSET', record, 'tenant', ARGV[13]) end
if batch then redis.call('HSET', record, 'batch_id', batch) end
redis.call('EXPIRE', record, ARGV[6])
if ended[phase] then redis.call('SREM', KEYS[3], key) else redis.call('SADD', KEYS[3], key) end
if KEYS[4] ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[4], 'job', key)
end
if old == phase then return 0 end
if batch then
  local counts = 'eksops:batch:' .. batch .. ':jobs'
  if old then redis.call('HINCRBY', counts, old, -1) end
  redis.call('HINCRBY', counts, phase, 1)
  redis.call('EXPIRE', counts, ARGV[6])
  if phase == 'failed' then
    local failed = 'eksops:batch:' .. batch .. ':failed-jobs'
    redis.call('RPUSH', failed, key)
    redis.call('EXPIRE', failed, ARGV[6])
  end
end
local reason = ARGV[12]
redis.call('PUBLISH', 'eksops:notify:job:' .. key, phase)
if ended[phase] and KEYS[4] ~= '' then
  -- The Job's end goes to the request's callback (or its batch's), through the outbox.
  local callback = redis.call('HGET', KEYS[4], 'callback')
  if not callback and batch then
    callback = redis.call('HGET', 'eksops:batch:' .. batch, 'callback')
  end
  if callback then
    redis.call('XADD', 'eksops:callbacks', 'MAXLEN', '~', ARGV[8], '*', 'kind', 'job',
      'request_id', ARGV[7], 'job', key, 'url', callback, 'attempts', '0')
    redis.call('HSET', KEYS[4], 'callback:job', '{"state": "pending", "attempts": 0}')
  end
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*',
  'kind', 'job', 'job', key, 'phase', phase, 'previous', old or '',
  'reason', reason, 'request_id', ARGV[7], 'batch_id', batch or '', 'at', ARGV[5])
return 1
"""

# KEYS: lease, record, tracker hash. ARGV: holder, pod name, pod JSON ('' to forget the
# pod), now, TTL s, most pods kept, the resume point ('' for none). Returns -1 when
# the lease is not ours, else 1.
UPSERT_POD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], 'pods_rv', ARGV[7]) end
local raw = redis.call('HGET', KEYS[2], 'pods')
local pods = raw and cjson.decode(raw) or {}
if ARGV[3] == '' then pods[ARGV[2]] = nil else pods[ARGV[2]] = cjson.decode(ARGV[3]) end
local names = {}
for name, _ in pairs(pods) do names[#names + 1] = name end
if #names > tonumber(ARGV[6]) then
  -- Keep the failed pods first, then the newest; forget the oldest succeeded ones.
  table.sort(names, function(a, b)
    local pa, pb = pods[a], pods[b]
    local fa, fb = pa.failed and 1 or 0, pb.failed and 1 or 0
    if fa ~= fb then return fa > fb end
    return (pa.seen or '') > (pb.seen or '')
  end)
  for i = tonumber(ARGV[6]) + 1, #names do pods[names[i]] = nil end
end
if next(pods) == nil then
  redis.call('HDEL', KEYS[2], 'pods')
else
  redis.call('HSET', KEYS[2], 'pods', cjson.encode(pods))
end
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: tracker hash, lease. ARGV: holder, then field, value pairs. -1 when the lease is
# not ours. The tracker's state (resume points, heartbeat, counters), fenced.
SET_TRACKER = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: lease, record. ARGV: holder, log JSON, TTL s. -1 when the lease is not ours.
SET_LOG = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'log', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


def request_key(request_id: str | None) -> str:
    """Return the request record's key of a Job's request ('' when it names none)."""
    return REQUEST_KEY_PREFIX + request_id if request_id else ""
