"""The scheduler and the kubelet of kubesim's one node: Pods from Pending to the end.

A new Pod is bound to the node at once (``Scheduled`` event, ``PodScheduled=True``)
or, when its plan says ``unschedulable``, left Pending with ``PodScheduled=False``
``Unschedulable`` and a ``FailedScheduling`` event, as kube-scheduler does. On the
node it spends ``pod_startup`` seconds in ``ContainerCreating`` (``Pulling``/
``Pulled`` - or "already present" for an ``IfNotPresent`` image seen before -,
``Created``, ``Started``), runs, and terminates with the plan's exit code
(``Completed``/``Error``/``OOMKilled``). ``restartPolicy: OnFailure`` restarts a
failed container in place (``restartCount``, ``lastState``, ``CrashLoopBackOff``,
``BackOff`` event). A deleted Pod gets ``Killing`` and is gone
``min(grace period, pod_termination)`` seconds later.

Every step is a timer at the planned moment, and each step's timestamps are the
planned ones, so a kubesim restored after downtime replays the steps that fell due
while it was down (``resume``) and lands where a cluster that kept running would be.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from kubesim import podstatus as ps
from kubesim.config import ClusterIdentity, SimConfig
from kubesim.events import NORMAL, WARNING, Recorder
from kubesim.podplan import PodPlan
from kubesim.sharing import Derived
from kubesim.store import JSON, Key, Store, key_of
from kubesim.timers import Timers

log = logging.getLogger(__name__)
HOST_IP = "10.0.1.10"
PULL_SECONDS = 0.9


def node_name(identity: ClusterIdentity) -> str:
    return f"ip-10-0-1-10.{identity.region}.compute.internal"


_NO_STATE: JSON = {}


@dataclass(slots=True)
class PodRun:
    """kubesim's own notes on one Pod: its plan and where it is in its life."""

    plan: PodPlan
    created: float
    stage: str = "new"
    at: float = 0.0
    """When the current stage began (planned time)."""
    started: float = 0.0
    restarts: int = 0
    last: JSON = field(default_factory=lambda: _NO_STATE)
    """Replaced, never changed in place: Pods that never restarted share one."""
    deleting: float | None = None

    def as_dict(self) -> JSON:
        data = asdict(self)
        data["plan"] = self.plan.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: JSON) -> PodRun:
        values = dict(data)
        values["plan"] = PodPlan.from_dict(values["plan"])
        return cls(**values)


class Kubelet:
    """Drives every Pod's status; the job controller watches the results."""

    def __init__(
        self,
        store: Store,
        config: SimConfig,
        timers: Timers,
        recorder: Recorder,
        identity: ClusterIdentity,
    ) -> None:
        self.store, self.config, self.timers = store, config, timers
        self.recorder, self.identity = recorder, identity
        self.node = node_name(identity)
        self.runs: dict[str, PodRun] = {}
        self.pulled: set[str] = set()
        self._ips = itertools.count(11)
        self.new_created_message = identity.kubernetes_version >= "1.32"
        self._on_step = self._step_due
        """One bound method for every Pod's timer (not a closure per Pod)."""
        self._bound: Derived[JSON] = Derived()
        """The bound spec of each Pod spec (Pods of one template share both)."""

    def reset(self) -> None:
        self.runs.clear()
        self.pulled.clear()

    # --- entry points -------------------------------------------------------------

    def admit(self, pod: JSON, plan: PodPlan, now: float) -> None:
        """A Pod was created: remember its plan and schedule it."""
        uid = pod["metadata"]["uid"]
        self.runs[uid] = PodRun(plan=plan, created=now, at=now)
        self._after(now, key_of(pod), uid)

    def resume(self, pod: JSON) -> None:
        """After a restore: catch up on the steps that fell due while kubesim was down."""
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        if run is None:
            return
        self._after(run.at, key_of(pod), uid, due=self._due(run, pod))

    def deleting(self, pod: JSON, now: float) -> None:
        """A graceful delete began: kill the containers, then remove the Pod."""
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if run is not None and run.deleting is not None:
            return
        if run is not None:
            run.deleting = now
        if run is not None and run.stage in (
            "running",
            "crashloop",
            "creating",
            "pullerr",
            "pullbackoff",
            "configerr",
        ):
            for name in ps.container_names(pod):
                self.recorder.emit(
                    pod,
                    NORMAL,
                    "Killing",
                    f"Stopping container {name}",
                    component="kubelet",
                    host=self.node,
                    field_path=f"spec.containers{{{name}}}",
                    now=now,
                )
        self.timers.at(
            now + min(grace, self.config.pod_termination),
            ("pod", uid),
            lambda at: self._finish_delete(key_of(pod), uid, at),
        )

    def forget(self, uid: str) -> None:
        self.runs.pop(uid, None)
        self.timers.cancel(("pod", uid))

    # --- the state machine --------------------------------------------------------

    def _startup(self, run: PodRun) -> float:
        if run.plan.ends:
            return min(self.config.pod_startup, run.plan.run_seconds / 4)
        return self.config.pod_startup

    def _due(self, run: PodRun, pod: JSON) -> float | None:
        """When the next step of ``run`` is due (None: nothing more happens)."""
        if run.deleting is not None:
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            return run.deleting + min(grace, self.config.pod_termination)
        if run.stage == "new":
            return run.created
        if run.stage == "creating":
            return run.at + self._startup(run)
        if run.stage == "pullerr":
            return run.at + max(self._startup(run), 0.05)
        if run.stage == "running" and run.plan.ends and self._restart_policy(pod) != "Always":
            return run.started + max(0.0, run.plan.run_seconds - self._startup(run))
        if run.stage == "crashloop":
            return run.at + self._startup(run)
        return None

    @staticmethod
    def _restart_policy(pod: JSON) -> str:
        return str((pod.get("spec") or {}).get("restartPolicy") or "Always")

    def _after(self, at: float, key: Key, uid: str, due: float | None = None) -> None:
        run = self.runs.get(uid)
        if run is None:
            return
        pod = self.store.get("pods", *key)
        if pod is None:
            return
        when = self._due(run, pod) if due is None else due
        if when is None:
            return
        self.timers.at(when, ("pod", uid), self._on_step, key, uid, when)
        del at

    def _step_due(self, now: float, key: Key, uid: str, when: float) -> None:
        del now  # the step happens at its planned moment, even when run late
        self._step(key, uid, when)

    def _step(self, key: Key, uid: str, when: float) -> None:
        run = self.runs.get(uid)
        pod = self.store.get("pods", *key)
        if run is None or pod is None or pod["metadata"].get("uid") != uid:
            return
        if run.deleting is not None:
            self._finish_delete(key, uid, when)
            return
        step = _STEPS.get(run.stage)
        if step is None:
            return
        getattr(self, step)(pod, run, when)
        self._after(when, key, uid)

    def _write(self, pod: JSON, status: JSON, spec: JSON | None = None) -> JSON:
        new = {**pod, "status": status}
        if spec is not None:
            new["spec"] = spec
        return self.store.commit("pods", new).obj

    def _container_event(  # noqa: PLR0917 - keyword use at every call site
        self, pod: JSON, name: str, kind: str, reason: str, message: str, when: float
    ) -> None:
        self.recorder.emit(
            pod,
            kind,
            reason,
            message,
            component="kubelet",
            host=self.node,
            field_path=f"spec.containers{{{name}}}",
            now=when,
        )

    def _schedule(self, pod: JSON, run: PodRun, when: float) -> None:
        if run.plan.behaviour == "unschedulable":
            run.stage, run.at = "unschedulable", when
            self._write(pod, ps.unschedulable(pod, when))
            self.recorder.emit_v1(
                pod,
                WARNING,
                "FailedScheduling",
                "Scheduling",
                ps.UNSCHEDULABLE_MESSAGE,
                controller="default-scheduler",
                instance=f"default-scheduler-{self.node}",
                now=when,
            )
            return
        spec = self._bound.get(pod["spec"], self._bind)
        meta = pod["metadata"]
        self.recorder.emit_v1(
            pod,
            NORMAL,
            "Scheduled",
            "Binding",
            f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {self.node}",
            controller="default-scheduler",
            instance=f"default-scheduler-{self.node}",
            now=when,
        )
        containers = [ps.waiting(pod, n, "ContainerCreating") for n in ps.container_names(pod)]
        status = ps.node_status(
            pod,
            phase="Pending",
            containers=containers,
            scheduled=when,
            sandbox_ready=None,
            ready_since=None,
            host_ip=HOST_IP,
            pod_ip="",
        )
        run.stage, run.at = "creating", when
        self._write(pod, status, spec)

    def _bind(self, spec: JSON) -> JSON:
        return {**spec, "nodeName": self.node}

    def _pod_ip(self, pod: JSON) -> str:
        return str((pod.get("status") or {}).get("podIP") or f"10.0.2.{next(self._ips) % 250 + 2}")

    def _pull(self, pod: JSON, container: JSON, when: float) -> None:
        name, image = container.get("name", ""), str(container.get("image") or "")
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        if policy == "IfNotPresent" and image in self.pulled:
            self._container_event(
                pod,
                name,
                NORMAL,
                "Pulled",
                f'Container image "{image}" already present on machine',
                when,
            )
            return
        self._container_event(pod, name, NORMAL, "Pulling", f'Pulling image "{image}"', when)
        self._container_event(
            pod,
            name,
            NORMAL,
            "Pulled",
            f'Successfully pulled image "{image}" in {PULL_SECONDS}s ({PULL_SECONDS}s including '
            "waiting). Image size: 2160406 bytes.",
            when,
        )
        self.pulled.add(image)

    def _start(self, pod: JSON, run: PodRun, when: float) -> None:
        containers = (pod.get("spec") or {}).get("containers") or []
        behaviour = run.plan.behaviour
        scheduled = run.at
        if behaviour == "image-pull-error":
            statuses = []
            for container in containers:
                name, image = container.get("name", ""), str(container.get("image") or "")
                message = _pull_error(image)
                self._container_event(
                    pod, name, NORMAL, "Pulling", f'Pulling image "{image}"', when
                )
                self._container_event(
                    pod, name, WARNING, "Failed", f'Failed to pull image "{image}": {message}', when
                )
                self._container_event(pod, name, WARNING, "Failed", "Error: ErrImagePull", when)
                statuses.append(ps.waiting(pod, name, "ErrImagePull", message))
            run.stage, run.at = "pullerr", when
            self._write(pod, self._status(pod, "Pending", statuses, scheduled, when, None))
            return
        if behaviour == "config-error":
            statuses = []
            for container in containers:
                name = container.get("name", "")
                message = 'configmap "app-config" not found'
                self._pull(pod, container, when)
                self._container_event(pod, name, WARNING, "Failed", f"Error: {message}", when)
                statuses.append(ps.waiting(pod, name, "CreateContainerConfigError", message))
            run.stage, run.at = "configerr", when
            self._write(pod, self._status(pod, "Pending", statuses, scheduled, when, None))
            return
        statuses = []
        for container in containers:
            name = container.get("name", "")
            self._pull(pod, container, when)
            created = "Created container: " if self.new_created_message else "Created container "
            self._container_event(pod, name, NORMAL, "Created", created + name, when)
            self._container_event(pod, name, NORMAL, "Started", f"Started container {name}", when)
            statuses.append(ps.running(pod, name, when))
        run.stage, run.at, run.started = "running", when, when
        self._write(pod, self._status(pod, "Running", statuses, scheduled, when, when))

    def _status(  # noqa: PLR0917 - keyword use at every call site
        self,
        pod: JSON,
        phase: str,
        containers: list[JSON],
        scheduled: float,
        sandbox: float | None,
        ready: float | None,
        finished: float | None = None,
    ) -> JSON:
        return ps.node_status(
            pod,
            phase=phase,
            containers=containers,
            scheduled=scheduled,
            sandbox_ready=sandbox,
            ready_since=ready,
            host_ip=HOST_IP,
            pod_ip=self._pod_ip(pod) if sandbox else "",
            finished=finished,
        )

    def _pull_backoff(self, pod: JSON, run: PodRun, when: float) -> None:
        statuses = []
        for container in (pod.get("spec") or {}).get("containers") or []:
            name, image = container.get("name", ""), str(container.get("image") or "")
            self._container_event(
                pod, name, NORMAL, "BackOff", f'Back-off pulling image "{image}"', when
            )
            self._container_event(pod, name, WARNING, "Failed", "Error: ImagePullBackOff", when)
            statuses.append(
                ps.waiting(pod, name, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            )
        run.stage, run.at = "pullbackoff", when
        self._write(pod, self._status(pod, "Pending", statuses, run.created, run.created, None))

    def _exit(self, pod: JSON, run: PodRun, when: float) -> None:
        plan = run.plan
        names = ps.container_names(pod)
        policy = self._restart_policy(pod)
        oom = plan.behaviour == "oom"
        if plan.fails and policy == "OnFailure":
            last = ps.terminated_state(
                pod,
                names[0],
                plan.exit_code,
                ps.termination_reason(plan.exit_code, oom),
                run.started,
                when,
                run.restarts,
                plan.message,
            )
            run.restarts += 1
            run.last = last
            meta = pod["metadata"]
            back_off = (
                f"back-off 10s restarting failed container={names[0]} "
                f"pod={meta['name']}_{meta.get('namespace')}({meta['uid']})"
            )
            statuses = [
                ps.waiting(pod, n, "CrashLoopBackOff", back_off, restarts=run.restarts, last=last)
                if i == 0
                else ps.running(pod, n, run.started)
                for i, n in enumerate(names)
            ]
            self._container_event(
                pod,
                names[0],
                WARNING,
                "BackOff",
                f"Back-off restarting failed container {names[0]} in pod "
                f"{meta['name']}_{meta.get('namespace')}({meta['uid']})",
                when,
            )
            run.stage, run.at = "crashloop", when
            self._write(pod, self._status(pod, "Running", statuses, run.created, run.created, None))
            return
        statuses = []
        failed = False
        for index, name in enumerate(names):
            code = plan.exit_code if index == 0 and plan.fails else 0
            failed = failed or code != 0
            state = ps.terminated_state(
                pod,
                name,
                code,
                ps.termination_reason(code, oom and index == 0),
                run.started,
                when,
                run.restarts,
                plan.message if code else "",
            )
            statuses.append(ps.terminated(pod, name, state, restarts=run.restarts, last=run.last))
        phase = "Failed" if failed else "Succeeded"
        run.stage, run.at = "done", when
        self._write(
            pod, self._status(pod, phase, statuses, run.created, run.created, run.started, when)
        )

    def _restart(self, pod: JSON, run: PodRun, when: float) -> None:
        names = ps.container_names(pod)
        created = "Created container: " if self.new_created_message else "Created container "
        self._container_event(
            pod,
            names[0],
            NORMAL,
            "Pulled",
            f'Container image "{_image(pod, names[0])}" already present on machine',
            when,
        )
        self._container_event(pod, names[0], NORMAL, "Created", created + names[0], when)
        self._container_event(
            pod, names[0], NORMAL, "Started", f"Started container {names[0]}", when
        )
        statuses = [
            ps.running(pod, n, when, restarts=run.restarts, last=run.last)
            if i == 0
            else ps.running(pod, n, run.started)
            for i, n in enumerate(names)
        ]
        run.stage, run.at, run.started = "running", when, when
        self._write(pod, self._status(pod, "Running", statuses, run.created, run.created, when))

    def _finish_delete(self, key: Key, uid: str, when: float) -> None:
        pod = self.store.get("pods", *key)
        run = self.runs.pop(uid, None)
        if pod is None or pod["metadata"].get("uid") != uid:
            return
        if run is not None and run.stage in ("running", "crashloop"):
            statuses = []
            for name in ps.container_names(pod):
                state = ps.terminated_state(
                    pod, name, 137, "Error", run.started, when, run.restarts
                )
                statuses.append(
                    ps.terminated(pod, name, state, restarts=run.restarts, last=run.last)
                )
            pod = self._write(
                pod,
                self._status(pod, "Failed", statuses, run.created, run.created, run.started, when),
            )
        if pod["metadata"].get("finalizers"):
            return
        self.store.commit("pods", None, key=key)


_STEPS = {
    "new": "_schedule",
    "creating": "_start",
    "pullerr": "_pull_backoff",
    "running": "_exit",
    "crashloop": "_restart",
}
"""The method that takes a Pod out of each stage."""


def _image(pod: JSON, name: str) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == name:
            return str(container.get("image") or "")
    return ""


def _pull_error(image: str) -> str:
    full = ps.full_image(image)
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
        f'failed to resolve reference "{full}": {full}: not found'
    )


def plan_of(kubelet: Kubelet, pod: JSON) -> PodPlan | None:
    run = kubelet.runs.get(pod["metadata"].get("uid", ""))
    return run.plan if run else None


def runs_json(kubelet: Kubelet) -> dict[str, Any]:
    return {uid: run.as_dict() for uid, run in kubelet.runs.items()}
