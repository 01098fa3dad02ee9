"""The Job controller: Pods for each Job, counted into its status and conditions.

What ``pkg/controller/job/job_controller.go`` does, for the fields kubesim serves:
create up to ``parallelism`` Pods (``SuccessfulCreate`` "Created pod: NAME"; names
``<job>-<5 chars>``, ``<job>-<index>-<5 chars>`` for Indexed), with the template's
labels and annotations and a controlling ownerReference; count terminated Pods into
``succeeded``/``failed``; keep ``active``, ``ready`` and ``terminating``; apply
``podFailurePolicy`` (FailJob / Ignore / Count on exit codes); fail the Job when
``failed > backoffLimit`` (``BackoffLimitExceeded``; with ``OnFailure``, when the
containers' restarts reach it) or ``activeDeadlineSeconds`` passed
(``DeadlineExceeded``), with ``FailureTarget`` first and ``Failed`` once no Pod is
terminating, as 1.31; succeed with ``SuccessCriteriaMet`` then ``Complete``
(``CompletionsReached``); ``suspend`` deletes active Pods (``Suspended``).
Replacement Pods are created at once (upstream waits an exponential back-off of
10 s, 20 s, ...: kubesim spreads a Job's attempts over its duration instead, see
``podplan``). The TTL-after-finished controller lives here too: a finished Job with
``ttlSecondsAfterFinished`` is deleted (background) that long after it finished.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from kubesim import podplan
from kubesim.config import SimConfig
from kubesim.events import NORMAL, WARNING, Recorder
from kubesim.kubelet import Kubelet
from kubesim.names import generate
from kubesim.sharing import Derived
from kubesim.store import JSON, Change, Key, Store, key_of, rfc3339
from kubesim.timers import Timers

log = logging.getLogger(__name__)
COMPONENT = "job-controller"
JOB_NAME = "batch.kubernetes.io/job-name"
INDEX = "batch.kubernetes.io/job-completion-index"
_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "CompletionsReached": "Reached expected number of succeeded pods",
}
_STATUS_ORDER = (
    "conditions",
    "startTime",
    "completionTime",
    "active",
    "succeeded",
    "failed",
    "terminating",
    "completedIndexes",
    "failedIndexes",
    "uncountedTerminatedPods",
    "ready",
)


_NO_PODS: set[str] = set()


@dataclass(slots=True)
class JobRun:
    """What the controller remembers of a Job beyond its status."""

    counted: set[str]
    succeeded: int = 0
    failed: int = 0
    started: float = 0.0

    def as_dict(self) -> JSON:
        return {
            "counted": sorted(self.counted),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, data: JSON) -> JobRun:
        return cls(
            set(data.get("counted") or ()),
            int(data["succeeded"]),
            int(data["failed"]),
            float(data.get("started") or 0),
        )


def _owner_uid(obj: JSON) -> str:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


def _condition(kind: str, reason: str, message: str, when: float) -> JSON:
    stamp = rfc3339(when)
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _held(job: JSON) -> frozenset[str]:
    """The types of the Job's conditions whose status is True."""
    conditions = (job.get("status") or {}).get("conditions")
    if not conditions:
        return _NONE
    return frozenset(c.get("type") for c in conditions if c.get("status") == "True")


_NONE: frozenset[str] = frozenset()
_FINISHED = frozenset({"Complete", "Failed"})


def finished(job: JSON) -> bool:
    return not _FINISHED.isdisjoint(_held(job))


class JobController:
    """Keeps every Job's Pods and status in line with its spec."""

    def __init__(
        self,
        store: Store,
        config: SimConfig,
        timers: Timers,
        recorder: Recorder,
        kubelet: Kubelet,
    ) -> None:
        self.store, self.config, self.timers = store, config, timers
        self.recorder, self.kubelet = recorder, kubelet
        self.pods_of: dict[str, set[Key]] = defaultdict(set)
        self.runs: dict[str, JobRun] = {}
        self._pod_specs: Derived[JSON] = Derived()
        """The Pod spec of each (shared) template spec: its Pods share one."""
        store.listeners.append(self._observe)

    def reset(self) -> None:
        self.pods_of.clear()
        self.runs.clear()

    # --- informers ------------------------------------------------------------------

    def _observe(self, change: Change) -> None:
        if change.resource == "jobs":
            meta = change.obj["metadata"]
            if change.type == "DELETED":
                self.runs.pop(meta["uid"], None)
                self.timers.cancel(("job", meta["uid"]))
                self.timers.cancel(("job-ttl", meta["uid"]))
                return
            if change.type == "ADDED" or _spec_changed(change):
                self.enqueue(key_of(change.obj))
        elif change.resource == "pods":
            own = _owner_uid(change.obj)
            owner = own or (_owner_uid(change.prev) if change.prev else "")
            if not owner:
                return
            pod_key = key_of(change.obj)
            if change.type == "DELETED":
                self.pods_of[owner].discard(pod_key)
            else:
                self.pods_of[owner].add(pod_key)
                if change.type == "ADDED" and own in self.runs:
                    return  # created by this controller's own sync, which counted it
                if change.type == "MODIFIED" and not _counts_changed(change.prev, change.obj):
                    return
            job_name = (change.obj["metadata"].get("labels") or {}).get(JOB_NAME)
            if job_name:
                self.enqueue((pod_key[0], job_name))

    def enqueue(self, key: Key) -> None:
        self.timers.soon(("job-sync", key), lambda now: self.sync(key, now))

    def adopt(self, job: JSON) -> None:
        """After a restore: index the Job and sync it (its timers are re-armed)."""
        self.enqueue(key_of(job))

    # --- sync -------------------------------------------------------------------------

    def sync(self, key: Key, now: float) -> None:  # noqa: PLR0912, PLR0915 - one pass of a controller or handler
        job = self.store.get("jobs", *key)
        if job is None:
            return
        meta = job["metadata"]
        uid = meta["uid"]
        run = self.runs.get(uid)
        if run is None:
            run = self.runs[uid] = JobRun(_NO_PODS)
        if meta.get("deletionTimestamp"):
            return
        held = _held(job)
        if not _FINISHED.isdisjoint(held):
            self._schedule_ttl(job)
            return
        spec = job["spec"]
        status = dict(job.get("status") or {})
        pods = [p for p in (self.store.get("pods", *k) for k in self.pods_of.get(uid, ())) if p]
        pods = [p for p in pods if _owner_uid(p) == uid]
        failure: tuple[str, str] | None = None
        for pod in pods:
            pod_uid = pod["metadata"]["uid"]
            phase = (pod.get("status") or {}).get("phase")
            if pod_uid in run.counted or phase not in ("Succeeded", "Failed"):
                continue
            if not run.counted:
                run.counted = set()  # the shared empty set is never added to
            run.counted.add(pod_uid)
            if phase == "Succeeded":
                run.succeeded += 1
                continue
            action, message = _failure_policy(spec, pod)
            if action == "Ignore":
                continue
            run.failed += 1
            if action == "FailJob" and failure is None:
                failure = ("PodFailurePolicy", message)
        active = [p for p in pods if _is_active(p)]
        terminating = [p for p in pods if _is_terminating(p)]
        conditions = list(status.get("conditions") or [])
        suspended = bool(spec.get("suspend"))
        if suspended:
            for pod in active:
                self._delete_pod(job, pod, now)
            active = []
            if "Suspended" not in held:
                conditions = [c for c in conditions if c.get("type") != "Suspended"]
                conditions.append(_condition("Suspended", "JobSuspended", "Job suspended", now))
                self.recorder.emit(
                    job, NORMAL, "Suspended", "Job suspended", component=COMPONENT, now=now
                )
        elif "Suspended" in held:
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
            conditions.append(
                {**_condition("Suspended", "JobResumed", "Job resumed", now), "status": "False"}
            )
            self.recorder.emit(job, NORMAL, "Resumed", "Job resumed", component=COMPONENT, now=now)
            run.started = now
        if not suspended and not status.get("startTime"):
            status["startTime"] = rfc3339(now)
            run.started = run.started or now
        started = run.started or now
        deadline = spec.get("activeDeadlineSeconds")
        if failure is None and not suspended and deadline is not None:
            if now >= started + float(deadline):
                failure = ("DeadlineExceeded", _MESSAGES["DeadlineExceeded"])
            else:
                self.timers.at(
                    started + float(deadline), ("job", uid), lambda at: self.sync(key, at)
                )
        backoff = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
        if failure is None and (
            run.failed > backoff or _past_backoff_on_failure(spec, active, backoff)
        ):
            failure = ("BackoffLimitExceeded", _MESSAGES["BackoffLimitExceeded"])
        completions = spec.get("completions")
        succeeded_enough = (
            run.succeeded >= int(completions)
            if completions is not None
            else run.succeeded > 0 and not active
        )
        if failure is not None or "FailureTarget" in held:
            if "FailureTarget" not in held:
                assert failure is not None
                reason, message = failure
                conditions.append(_condition("FailureTarget", reason, message, now))
                self.recorder.emit(job, WARNING, reason, message, component=COMPONENT, now=now)
            for pod in active:
                self._delete_pod(job, pod, now)
            terminating = terminating + active
            active = []
            if not terminating:
                target = next(c for c in conditions if c.get("type") == "FailureTarget")
                conditions.append(_condition("Failed", target["reason"], target["message"], now))
        elif succeeded_enough:
            if "SuccessCriteriaMet" not in held:
                conditions.append(
                    _condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        _MESSAGES["CompletionsReached"],
                        now,
                    )
                )
            for pod in active:
                self._delete_pod(job, pod, now)
            terminating = terminating + active
            active = []
            if not terminating:
                conditions.append(
                    _condition(
                        "Complete", "CompletionsReached", _MESSAGES["CompletionsReached"], now
                    )
                )
                status["completionTime"] = rfc3339(now)
                self.recorder.emit(
                    job, NORMAL, "Completed", "Job completed", component=COMPONENT, now=now
                )
        elif not suspended:
            active = active + self._create_pods(job, run, active, terminating, now)
        status["conditions"] = conditions
        status["active"] = len(active)
        status["succeeded"] = run.succeeded
        status["failed"] = run.failed
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        status["ready"] = sum(1 for p in active if _is_ready(p))
        if spec.get("completionMode") == "Indexed":
            status["completedIndexes"] = _indexes(p for p in pods if _phase(p) == "Succeeded")
        new_status = _ordered(status)
        if new_status != (job.get("status") or {}):
            job = self.store.commit("jobs", {**job, "status": new_status}).obj
        if finished(job):
            self._schedule_ttl(job)

    # --- pods ---------------------------------------------------------------------------

    def _create_pods(
        self, job: JSON, run: JobRun, active: list[JSON], terminating: list[JSON], now: float
    ) -> list[JSON]:
        spec = job["spec"]
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        completions = spec.get("completions")
        if completions is not None:
            want = min(parallelism, int(completions) - run.succeeded)
        else:
            want = parallelism if run.succeeded == 0 else 0
        if spec.get("podReplacementPolicy") == "Failed":
            want -= len(terminating)
        missing = want - len(active)
        created = []
        used = {_index_of(p) for p in active}
        done = {_index_of(p) for p in self._owned(job) if _phase(p) == "Succeeded"}
        for _ in range(max(0, missing)):
            index = None
            if spec.get("completionMode") == "Indexed" and completions is not None:
                free = [i for i in range(int(completions)) if i not in used and i not in done]
                if not free:
                    break
                index = free[0]
                used.add(index)
            created.append(self._create_pod(job, run, index, now))
        return created

    def _owned(self, job: JSON) -> list[JSON]:
        uid = job["metadata"]["uid"]
        return [p for p in (self.store.get("pods", *k) for k in self.pods_of.get(uid, ())) if p]

    def _create_pod(self, job: JSON, run: JobRun, index: int | None, now: float) -> JSON:
        meta = job["metadata"]
        template = job["spec"].get("template") or {}
        template_meta = template.get("metadata") or {}
        prefix = f"{meta['name']}-" if index is None else f"{meta['name']}-{index}-"
        name = generate(prefix)
        while self.store.get("pods", meta["namespace"], name) is not None:
            name = generate(prefix)
        # stored objects are never changed in place: the Pod shares the template's
        # labels and annotations (and its containers) unless it needs its own
        labels = template_meta.get("labels") or {}
        annotations = template_meta.get("annotations") or {}
        pod_spec = dict(template.get("spec") or {})
        spec: JSON | None = None
        if index is None:
            spec = self._pod_specs.get(template.get("spec") or {}, _pod_spec_of)
        else:
            labels, annotations = dict(labels), dict(annotations)
            labels[INDEX] = str(index)
            annotations[INDEX] = str(index)
            pod_spec["hostname"] = f"{meta['name']}-{index}"
            pod_spec["containers"] = [
                {
                    **c,
                    "env": [
                        *(c.get("env") or []),
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": f"metadata.annotations['{INDEX}']",
                                }
                            },
                        },
                    ],
                }
                for c in pod_spec.get("containers") or []
            ]
        pod_meta: JSON = {
            "name": name,
            "generateName": prefix,
            "namespace": meta["namespace"],
            "uid": self.store.new_uid(),
            "resourceVersion": "",
            "creationTimestamp": rfc3339(now),
            "labels": labels,
        }
        if annotations:
            pod_meta["annotations"] = annotations
        pod_meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": pod_meta,
            "spec": spec if spec is not None else default_pod_spec(pod_spec),
            "status": {"phase": "Pending", "qosClass": _qos(pod_spec)},
        }
        failed_so_far = run.failed + sum(
            int(c.get("restartCount") or 0)
            for p in self._owned(job)
            for c in (p.get("status") or {}).get("containerStatuses") or []
        )
        plan = podplan.plan_for_job_pod(job, self.config, failed_so_far)
        stored = self.store.commit("pods", pod).obj
        self.recorder.emit(
            job, NORMAL, "SuccessfulCreate", f"Created pod: {name}", component=COMPONENT, now=now
        )
        self.kubelet.admit(stored, plan, now)
        return stored

    def _delete_pod(self, job: JSON, pod: JSON, now: float) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            return
        delete_pod(self.store, self.kubelet, pod, now, grace=None)
        self.recorder.emit(
            job,
            NORMAL,
            "SuccessfulDelete",
            f"Deleted pod: {pod['metadata']['name']}",
            component=COMPONENT,
            now=now,
        )

    # --- ttl ------------------------------------------------------------------------------

    def _schedule_ttl(self, job: JSON) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished_at = _finish_time(job)
        key = key_of(job)
        uid = job["metadata"]["uid"]
        self.timers.at(
            finished_at + float(ttl), ("job-ttl", uid), lambda now: self._expire(key, uid, now)
        )

    def _expire(self, key: Key, uid: str, now: float) -> None:
        job = self.store.get("jobs", *key)
        if job is None or job["metadata"]["uid"] != uid or job["metadata"].get("deletionTimestamp"):
            return
        log.debug("TTL after finished: deleting job %s/%s", *key)
        from kubesim import gc  # noqa: PLC0415 - gc imports this module's helpers

        gc.delete_now_or_finalize(self.store, "jobs", job, now, propagation="Background")


_DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]
"""What DefaultTolerationSeconds admission adds; one list shared by every Pod."""


def _pod_spec_of(template_spec: JSON) -> JSON:
    return default_pod_spec(dict(template_spec))


def default_pod_spec(spec: JSON) -> JSON:
    """Fields the Pod's admission and defaulting add to a template spec."""
    out = dict(spec)
    out.setdefault("serviceAccountName", "default")
    out.setdefault("serviceAccount", out["serviceAccountName"])
    out.setdefault("enableServiceLinks", True)
    out.setdefault("priority", 0)
    out.setdefault("preemptionPolicy", "PreemptLowerPriority")
    out.setdefault("tolerations", _DEFAULT_TOLERATIONS)
    return out


def delete_pod(
    store: Store, kubelet: Kubelet, pod: JSON, now: float, grace: int | None
) -> JSON | None:
    """Delete a Pod as its REST storage does: at once if it never ran, else gracefully.

    Returns the Pod marked for deletion, or None when it is gone already.
    """
    meta = pod["metadata"]
    if grace is None:
        grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 30)
    phase = (pod.get("status") or {}).get("phase")
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    if (grace == 0 or not scheduled or phase in ("Succeeded", "Failed")) and not meta.get(
        "finalizers"
    ):
        kubelet.forget(meta["uid"])
        store.commit("pods", None, key=key_of(pod))
        return None
    if meta.get("deletionTimestamp"):
        return pod
    new_meta = dict(meta)
    new_meta["deletionTimestamp"] = rfc3339(now + grace)
    new_meta["deletionGracePeriodSeconds"] = grace
    marked = store.commit("pods", {**pod, "metadata": new_meta}).obj
    kubelet.deleting(marked, now)
    return marked


def _counts_changed(prev: JSON | None, new: JSON) -> bool:
    """Whether a Pod change can change its Job's counts (phase, readiness, deletion)."""
    if prev is None:
        return True
    return (
        _phase(prev) != _phase(new)
        or _is_ready(prev) != _is_ready(new)
        or bool(prev["metadata"].get("deletionTimestamp"))
        != bool(new["metadata"].get("deletionTimestamp"))
        or _restarts(prev) != _restarts(new)
    )


def _restarts(pod: JSON) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _spec_changed(change: Change) -> bool:
    prev = change.prev or {}
    return prev.get("spec") is not change.obj.get("spec") and prev.get("spec") != change.obj.get(
        "spec"
    )


def _phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _is_active(pod: JSON) -> bool:
    return _phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _is_terminating(pod: JSON) -> bool:
    return _phase(pod) not in ("Succeeded", "Failed") and bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _is_ready(pod: JSON) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _index_of(pod: JSON) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX)
    return int(value) if value is not None and str(value).isdigit() else None


def _indexes(pods: Any) -> str:
    values = sorted({i for i in (_index_of(p) for p in pods) if i is not None})
    ranges: list[str] = []
    for value in values:
        if ranges and "-" not in ranges[-1] and int(ranges[-1]) == value - 1:
            ranges[-1] = f"{ranges[-1]}-{value}"
        elif ranges and "-" in ranges[-1] and int(ranges[-1].split("-")[1]) == value - 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{value}"
        else:
            ranges.append(str(value))
    return ",".join(ranges)


def _ordered(status: JSON) -> JSON:
    out = {k: status[k] for k in _STATUS_ORDER if k in status}
    for key in ("active", "succeeded", "failed"):
        if not out.get(key):
            out.pop(key, None)
    if not out.get("conditions"):
        out.pop("conditions", None)
    if not out.get("completedIndexes"):
        out.pop("completedIndexes", None)
    return out


def _qos(spec: JSON) -> str:
    from kubesim.podstatus import qos_class  # noqa: PLC0415 - small helper, no cycle at import

    return qos_class({"spec": spec})


def _past_backoff_on_failure(spec: JSON, active: list[JSON], backoff: int) -> bool:
    if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(
        int(c.get("restartCount") or 0)
        for p in active
        for c in (p.get("status") or {}).get("containerStatuses") or []
    )
    if backoff == 0:
        return restarts > 0
    return restarts >= backoff


def _failure_policy(spec: JSON, pod: JSON) -> tuple[str, str]:
    """The podFailurePolicy action for a failed Pod ("Count" when no rule matches)."""
    policy = spec.get("podFailurePolicy") or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        on_codes = rule.get("onExitCodes")
        if on_codes:
            for status in statuses:
                terminated = (status.get("state") or {}).get("terminated") or {}
                code = terminated.get("exitCode")
                if code in (None, 0):
                    continue
                if on_codes.get("containerName") and on_codes["containerName"] != status.get(
                    "name"
                ):
                    continue
                values = set(on_codes.get("values") or [])
                hit = code in values if on_codes.get("operator") == "In" else code not in values
                if hit:
                    action = str(rule.get("action"))
                    message = (
                        f"Container {status.get('name')} for pod {meta.get('namespace')}/"
                        f"{meta['name']} failed with exit code {code} matching {action} rule at "
                        f"index {index}"
                    )
                    return action, message
        for pattern in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                    "status", "True"
                ):
                    action = str(rule.get("action"))
                    message = (
                        f"Pod {meta.get('namespace')}/{meta['name']} has condition "
                        f"{cond.get('type')} matching {action} rule at index {index}"
                    )
                    return action, message
    return "Count", ""


def _finish_time(job: JSON) -> float:
    import calendar  # noqa: PLC0415
    import time  # noqa: PLC0415

    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            stamp = str(cond.get("lastTransitionTime") or "")
            try:
                return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
            except ValueError:
                break
    return time.time()
