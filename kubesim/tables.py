"""Server-side printing: ``as=Table`` and the ``PartialObjectMetadata`` views.

Columns and cells are those of ``pkg/printers/internalversion/printers.go``
(``printNamespace``, ``printJob``, ``printPod``, ``printEvent``): Namespace NAME
STATUS AGE; Job NAME STATUS COMPLETIONS DURATION AGE (+ CONTAINERS IMAGES SELECTOR
at priority 1); Pod NAME READY STATUS RESTARTS AGE (+ IP NODE NOMINATED NODE
READINESS GATES); Event LAST SEEN TYPE REASON OBJECT MESSAGE (+ SUBOBJECT SOURCE
FIRST SEEN COUNT NAME). Ages and durations use ``duration.HumanDuration``. Each
row carries the object as ``PartialObjectMetadata`` unless ``includeObject`` says
``Object`` or ``None``.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from kubesim import statuses
from kubesim.calls import JSON
from kubesim.kinds import Kind
from kubesim.selectors import match_labels_selector

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/"
    "names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/"
    "sig-architecture/api-conventions.md#metadata"
)


def _col(name: str, kind: str, description: str, *, priority: int = 0, fmt: str = "") -> JSON:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


COLUMNS: dict[str, list[JSON]] = {
    "namespaces": [
        _col("Name", "string", _NAME_DOC, fmt="name"),
        _col("Status", "string", "The status of the namespace"),
        _col("Age", "string", _AGE_DOC),
    ],
    "jobs": [
        _col("Name", "string", _NAME_DOC, fmt="name"),
        _col("Status", "string", "Status of the job."),
        _col("Completions", "string", "The completion status of the job."),
        _col("Duration", "string", "Time required to complete the job."),
        _col("Age", "string", _AGE_DOC),
        _col("Containers", "string", "Names of each container in the template.", priority=1),
        _col(
            "Images", "string", "Images referenced by each container in the template.", priority=1
        ),
        _col(
            "Selector",
            "string",
            "A label query over pods that should match the pod count. "
            "Normally, the system sets this field for you. More info: https://kubernetes.io/"
            "docs/concepts/overview/working-with-objects/labels/#label-selectors",
            priority=1,
        ),
    ],
    "pods": [
        _col("Name", "string", _NAME_DOC, fmt="name"),
        _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "string", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been "
            "restarted and when the last container in this pod has restarted.",
        ),
        _col("Age", "string", _AGE_DOC),
        _col(
            "IP",
            "string",
            "podIP address allocated to the pod. Routable at least within the "
            "cluster. Empty if not yet allocated.",
            priority=1,
        ),
        _col(
            "Node", "string", "NodeName indicates in which node this pod is scheduled.", priority=1
        ),
        _col(
            "Nominated Node",
            "string",
            "nominatedNodeName is set when this pod preempts other "
            "pods on the node, but it cannot be scheduled right away as preemption victims "
            "receive their graceful termination periods.",
            priority=1,
        ),
        _col(
            "Readiness Gates",
            "string",
            "If specified, all readiness gates will be evaluated for pod readiness.",
            priority=1,
        ),
    ],
    "events": [
        _col(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        _col(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        _col(
            "Reason",
            "string",
            "This should be a short, machine understandable string that "
            "gives the reason for the transition into the object's current status.",
        ),
        _col("Object", "string", "The object that this event is about."),
        _col(
            "Subobject",
            "string",
            "If the reference is to a portion of an object instead of "
            "an entire object, this string should contain a valid JSON/Go field access "
            "statement.",
            priority=1,
        ),
        _col(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
            priority=1,
        ),
        _col("Message", "string", "A human-readable description of the status of this operation."),
        _col("First Seen", "string", "The time at which the event was first recorded.", priority=1),
        _col("Count", "string", "The number of times this event has occurred.", priority=1),
        _col("Name", "string", _NAME_DOC, fmt="name", priority=1),
    ],
}


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _epoch(stamp: Any) -> float | None:
    if not stamp or not isinstance(stamp, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def _age(stamp: Any, now: float) -> str:
    when = _epoch(stamp)
    return "<unknown>" if when is None else human_duration(now - when)


def _namespace_row(obj: JSON, now: float) -> list[Any]:
    return [
        obj["metadata"]["name"],
        (obj.get("status") or {}).get("phase", ""),
        _age(obj["metadata"].get("creationTimestamp"), now),
    ]


def _job_status(job: JSON) -> str:
    conditions = {
        c.get("type"): c.get("status") for c in (job.get("status") or {}).get("conditions") or []
    }
    if conditions.get("Complete") == "True":
        return "Complete"
    if conditions.get("Failed") == "True":
        return "Failed"
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if conditions.get("Suspended") == "True":
        return "Suspended"
    if conditions.get("FailureTarget") == "True":
        return "FailureTarget"
    if conditions.get("SuccessCriteriaMet") == "True":
        return "SuccessCriteriaMet"
    return "Running"


def _job_row(obj: JSON, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = _epoch(status.get("startTime"))
    end = _epoch(status.get("completionTime"))
    duration = "" if start is None else human_duration((end or now) - start)
    containers = (spec.get("template") or {}).get("spec", {}).get("containers") or []
    return [
        obj["metadata"]["name"],
        _job_status(obj),
        completions,
        duration,
        _age(obj["metadata"].get("creationTimestamp"), now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        match_labels_selector(spec.get("selector") or {}),
    ]


def pod_reason(pod: JSON) -> str:
    """The STATUS column of ``kubectl get pods`` (``printPod``'s reason)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif state.get("terminated"):
            code = state["terminated"].get("exitCode", 0)
            reason = f"ExitCode:{code}"
        elif container.get("ready") and state.get("running"):
            has_running = True
    if reason == "Completed" and has_running:
        reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(obj: JSON, now: float) -> list[Any]:
    status = obj.get("status") or {}
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses_ = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses_ if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses_)
    restart_text = str(restarts)
    last = None
    for c in statuses_:
        finished = _epoch(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (last is None or finished > last):
            last = finished
    if restarts and last is not None:
        restart_text = f"{restarts} ({human_duration(now - last)} ago)"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(containers)}",
        pod_reason(obj),
        restart_text,
        _age(obj["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        (obj.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _event_row(obj: JSON, now: float) -> list[Any]:
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    last = obj.get("lastTimestamp") or (obj.get("series") or {}).get("lastObservedTime") or first
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    source = obj.get("source") or {}
    source_text = source.get("component") or obj.get("reportingComponent") or ""
    if source.get("host"):
        source_text = f"{source_text}, {source['host']}"
    count = obj.get("count") or (obj.get("series") or {}).get("count") or 1
    return [
        _age(last, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source_text,
        (obj.get("message") or obj.get("note") or "").strip(),
        _age(first, now),
        str(count),
        obj["metadata"]["name"],
    ]


_ROWS: dict[str, Callable[[JSON, float], list[Any]]] = {
    "namespaces": _namespace_row,
    "jobs": _job_row,
    "pods": _pod_row,
    "events": _event_row,
}


def partial(obj: JSON, version: str) -> JSON:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def _row(kind: Kind, obj: JSON, include: str, version: str, now: float) -> JSON:
    row: JSON = {"cells": _ROWS[kind.table](obj, now)}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = partial({**obj, "metadata": obj["metadata"]}, version)
    return row


def table(
    kind: Kind,
    body: JSON,
    *,
    version: str,
    include: str,
    headers: bool = True,
    now: float | None = None,
) -> JSON:
    """``meta.k8s.io`` Table of an object or a list body."""
    if include not in ("", "Metadata", "Object", "None"):
        raise statuses.invalid(
            "TableOptions",
            "meta.k8s.io",
            "",
            [
                statuses.FieldError(
                    statuses.INVALID,
                    "includeObject",
                    include,
                    "must be 'Metadata', 'Object', 'None', or empty",
                )
            ],
        )
    now = time.time() if now is None else now
    is_list = "items" in body
    objects = body["items"] if is_list else [body]
    out: JSON = {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}"}
    meta: JSON = {}
    if is_list:
        meta = {
            k: v
            for k, v in body.get("metadata", {}).items()
            if k in ("resourceVersion", "continue", "remainingItemCount")
        }
    else:
        meta = {"resourceVersion": body["metadata"].get("resourceVersion", "")}
    out["metadata"] = meta
    if headers:
        out["columnDefinitions"] = COLUMNS[kind.table]
    out["rows"] = [_row(kind, obj, include or "Metadata", version, now) for obj in objects]
    return out


def metadata_view(kind: Kind, body: JSON, transform: str, version: str) -> JSON:
    if "items" in body:
        if transform != "PartialObjectMetadataList":
            raise statuses.bad_request("PartialObjectMetadata is only available for single objects")
        return {
            "kind": "PartialObjectMetadataList",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": body["metadata"],
            "items": [partial(item, version) for item in body["items"]],
        }
    del kind
    return partial(body, version)
