"""Pod ``status`` documents as the scheduler and the kubelet write them.

Pure builders: given the pod, its containers and a moment, return the status a
real node reports - conditions in the kubelet's order (``PodReadyToStartContainers``,
``Initialized``, ``Ready``, ``ContainersReady``, ``PodScheduled``; see
``pkg/kubelet/status/generate.go``), ``containerStatuses`` with ``waiting``
(``ContainerCreating``, ``ErrImagePull``, ``ImagePullBackOff``,
``CreateContainerConfigError``, ``CrashLoopBackOff``), ``running`` or ``terminated``
(``Completed``/``Error``/``OOMKilled``), the QoS class
(``pkg/apis/core/v1/helper/qos``) and the node's IPs.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from kubesim.store import rfc3339

JSON = dict[str, Any]
UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)


def container_names(pod: JSON) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]


@functools.lru_cache(maxsize=1024)
def full_image(image: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest`` (how containerd names it)."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


@functools.lru_cache(maxsize=1024)
def image_id(image: str) -> str:
    digest = hashlib.sha256(full_image(image).encode()).hexdigest()
    return f"{full_image(image).rsplit(':', 1)[0]}@sha256:{digest}"


def container_id(pod_uid: str, name: str, restart: int) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}/{restart}".encode()).hexdigest()
    return f"containerd://{digest}"


def qos_class(pod: JSON) -> str:
    requests_all, limits_all, guaranteed = False, False, True
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources")
        if not resources:
            guaranteed = False
            continue
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_all = requests_all or bool(requests)
        limits_all = limits_all or bool(limits)
        if set(limits) < {"cpu", "memory"} or any(
            requests.get(k, v) != v for k, v in limits.items()
        ):
            guaranteed = False
    if not requests_all and not limits_all:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_SHARED: dict[Any, Any] = {}
"""Status parts that many Pods have alike (a condition at one second, a node IP),
built once: stored objects are never changed in place, so they can be shared."""
_SHARED_MAX = 8192


def _shared(key: Any, build: Any) -> Any:
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = build()
    return found


def _cond(kind: str, status: bool, when: float, reason: str = "", message: str = "") -> JSON:
    stamp = rfc3339(when)
    return _shared(  # type: ignore[no-any-return]
        ("cond", kind, status, stamp, reason, message),
        lambda: _new_cond(kind, status, stamp, reason, message),
    )


def _new_cond(kind: str, status: bool, stamp: str, reason: str, message: str) -> JSON:
    cond: JSON = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def unschedulable(pod: JSON, when: float) -> JSON:
    return {
        "phase": "Pending",
        "conditions": [
            _cond("PodScheduled", False, when, "Unschedulable", UNSCHEDULABLE_MESSAGE),
        ],
        "qosClass": qos_class(pod),
    }


def node_status(
    pod: JSON,
    *,
    phase: str,
    containers: list[JSON],
    scheduled: float,
    sandbox_ready: float | None,
    ready_since: float | None,
    host_ip: str,
    pod_ip: str,
    finished: float | None = None,
) -> JSON:
    """The kubelet's status once the pod is on a node."""
    not_ready = tuple(c["name"] for c in containers if not c.get("ready"))
    conditions = _node_conditions(phase, not_ready, scheduled, sandbox_ready, ready_since, finished)
    status: JSON = {"phase": phase, "conditions": conditions, "hostIP": host_ip}
    status["hostIPs"] = _shared(("ips", host_ip), lambda: [{"ip": host_ip}])
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = _shared(("ips", pod_ip), lambda: [{"ip": pod_ip}])
    status["startTime"] = rfc3339(scheduled)
    status["containerStatuses"] = containers
    # resources cannot change, so neither can the class the Pod was created with
    status["qosClass"] = (pod.get("status") or {}).get("qosClass") or qos_class(pod)
    return status


def _node_conditions(  # noqa: PLR0917 - the inputs of one cache key
    phase: str,
    not_ready: tuple[str, ...],
    scheduled: float,
    sandbox_ready: float | None,
    ready_since: float | None,
    finished: float | None,
) -> list[JSON]:
    """The kubelet's conditions, in its order (one shared list per distinct set)."""
    sandbox = sandbox_ready is not None and finished is None
    first = sandbox_ready if sandbox_ready is not None and sandbox else (finished or scheduled)
    if phase in ("Succeeded", "Failed"):
        mode, when = "done", finished or scheduled
    elif not_ready:
        mode, when = "unready", scheduled if ready_since is None else ready_since
    else:
        mode, when = "ready", ready_since or scheduled
    stamps = (rfc3339(first), rfc3339(scheduled), rfc3339(when))
    key = ("conditions", mode, not_ready, sandbox, *stamps)
    return _shared(key, lambda: _build_conditions(mode, not_ready, sandbox, *stamps))  # type: ignore[no-any-return]


def _build_conditions(  # noqa: PLR0917 - positional from one call site
    mode: str, not_ready: tuple[str, ...], sandbox: bool, first: str, scheduled: str, when: str
) -> list[JSON]:
    conditions = [
        _new_cond("PodReadyToStartContainers", sandbox, first, "", ""),
        _new_cond("Initialized", True, scheduled, "", ""),
    ]
    if mode == "done":
        conditions.append(_new_cond("Ready", False, when, "PodCompleted", ""))
        conditions.append(_new_cond("ContainersReady", False, when, "PodCompleted", ""))
    elif mode == "unready":
        message = f"containers with unready status: [{' '.join(not_ready)}]"
        conditions.append(_new_cond("Ready", False, when, "ContainersNotReady", message))
        conditions.append(_new_cond("ContainersReady", False, when, "ContainersNotReady", message))
    else:
        conditions.append(_new_cond("Ready", True, when, "", ""))
        conditions.append(_new_cond("ContainersReady", True, when, "", ""))
    conditions.append(_new_cond("PodScheduled", True, scheduled, "", ""))
    return conditions


def waiting(
    pod: JSON,
    name: str,
    reason: str,
    message: str = "",
    *,
    restarts: int = 0,
    last: JSON | None = None,
) -> JSON:
    state: JSON = {"reason": reason}
    if message:
        state["message"] = message
    image = _image_of(pod, name)
    return {
        "name": name,
        "state": {"waiting": state},
        "lastState": last or {},
        "ready": False,
        "restartCount": restarts,
        "image": image if restarts == 0 and not last else full_image(image),
        "imageID": "" if not last else image_id(image),
        "started": False,
    }


def running(
    pod: JSON, name: str, since: float, *, restarts: int = 0, last: JSON | None = None
) -> JSON:
    uid = pod["metadata"].get("uid", "")
    image = _image_of(pod, name)
    return {
        "name": name,
        "state": _running_state(rfc3339(since)),
        "lastState": last or {},
        "ready": True,
        "restartCount": restarts,
        "image": full_image(image),
        "imageID": image_id(image),
        "containerID": container_id(uid, name, restarts),
        "started": True,
    }


def _running_state(stamp: str) -> JSON:
    return _shared(("running", stamp), lambda: {"running": {"startedAt": stamp}})  # type: ignore[no-any-return]


def terminated_state(  # noqa: PLR0917 - keyword use at every call site
    pod: JSON,
    name: str,
    exit_code: int,
    reason: str,
    started: float,
    finished: float,
    restarts: int,
    message: str = "",
) -> JSON:
    state: JSON = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    state["startedAt"] = rfc3339(started)
    state["finishedAt"] = rfc3339(finished)
    state["containerID"] = container_id(pod["metadata"].get("uid", ""), name, restarts)
    return {"terminated": state}


def terminated(
    pod: JSON, name: str, state: JSON, *, restarts: int = 0, last: JSON | None = None
) -> JSON:
    uid = pod["metadata"].get("uid", "")
    image = _image_of(pod, name)
    return {
        "name": name,
        "state": state,
        "lastState": last or {},
        "ready": False,
        "restartCount": restarts,
        "image": full_image(image),
        "imageID": image_id(image),
        "containerID": container_id(uid, name, restarts),
        "started": False,
    }


def termination_reason(exit_code: int, oom: bool) -> str:
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def _image_of(pod: JSON, name: str) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == name:
            return str(container.get("image") or "")
    return ""
