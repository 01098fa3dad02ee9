"""``GET /pods/{name}/log``: what a container printed, deterministically.

Output comes from the ``kubesim.eksops.io/logs`` annotation when the Job or Pod has
one, else from the container's command and args: ``echo a b`` prints ``a b``, and
``sh -c "echo x; ...; echo y"`` prints each echoed text. A failed container adds
a last line (``Killed`` for OOM, else ``exit status N``, or the termination message
annotation). Lines are stamped from the container's start (``timestamps=true``
gives RFC 3339 nanosecond stamps, as the kubelet's CRI logs). Parameters are the
kubelet's: ``container`` (required when the Pod has several, error texts of
``pkg/registry/core/pod/strategy.go``), ``previous`` (the attempt before the last
restart), ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``limitBytes`` and
``follow`` (the stream stays open until the container terminates).
"""

from __future__ import annotations

import asyncio
import calendar
import shlex
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim import statuses
from kubesim.calls import JSON, Call, Reply

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

_FOLLOW_POLL = 0.05


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def _echoes(script: str) -> list[str]:
    lines: list[str] = []
    for statement in script.replace("&&", ";").replace("\n", ";").split(";"):
        try:
            words = shlex.split(statement)
        except ValueError:
            continue
        if words and words[0] in ("echo", "printf"):
            text = " ".join(w for w in words[1:] if not (words[0] == "echo" and w in ("-n", "-e")))
            lines.extend(text.replace("\\n", "\n").split("\n") if words[0] == "printf" else [text])
    return [line for line in lines if line != "" or len(lines) == 1]


def program_output(container: JSON) -> list[str]:
    argv = [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in (container.get("args") or [])
    ]
    if not argv:
        return []
    program = argv[0].rsplit("/", 1)[-1]
    if program == "echo":
        return [" ".join(argv[1:])]
    if program in ("sh", "bash", "ash", "dash") and len(argv) >= 3 and argv[1] == "-c":
        return _echoes(argv[2])
    return []


def _container(pod: JSON, name: str) -> JSON:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == name:
            return dict(container)
    return {}


def _status(pod: JSON, name: str) -> JSON:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return dict(status)
    return {}


def _lines(
    cluster: Cluster, pod: JSON, name: str, previous: bool
) -> tuple[list[tuple[float, str]], bool]:
    """(stamped lines, whether the container has finished) for one container attempt."""
    run = cluster.kubelet.runs.get(pod["metadata"]["uid"])
    plan = run.plan if run else None
    status = _status(pod, name)
    state = (status.get("lastState") if previous else status.get("state")) or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    started = _epoch(running.get("startedAt") or terminated.get("startedAt"))
    if run is not None and not previous and run.started:
        started = run.started
    started = started or time.time()
    if plan is not None and plan.logs is not None:
        texts = plan.logs.split("\n")
        if texts and texts[-1] == "":
            texts.pop()
    else:
        texts = program_output(_container(pod, name))
    stamped = [(started + 0.001 * (i + 1), text) for i, text in enumerate(texts)]
    done = bool(terminated)
    code = int(terminated.get("exitCode") or 0)
    if done and code != 0:
        finished = _epoch(terminated.get("finishedAt")) or started
        reason = terminated.get("reason")
        message = terminated.get("message") or ""
        if reason == "OOMKilled":
            last = "Killed"
        elif message:
            last = message
        else:
            last = f"exit status {code}"
        stamped.append((max(finished, stamped[-1][0] + 0.001 if stamped else finished), last))
    return stamped, done or bool(pod["metadata"].get("deletionTimestamp") and not running)


def _select(cluster: Cluster, call: Call) -> tuple[JSON, str]:
    info = call.info
    pod = cluster.store.get("pods", info.namespace, info.name)
    if pod is None:
        raise statuses.not_found("pods", "", info.name)
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    name = call.query.get("container", "")
    if not name:
        if len(names) != 1:
            raise statuses.bad_request(
                f"a container name must be specified for pod {info.name}, choose one of: "
                f"[{' '.join(names)}]"
            )
        name = names[0]
    if name not in names:
        raise statuses.bad_request(f"container {name} is not valid for pod {info.name}")
    return pod, name


def _waiting_error(pod: JSON, name: str) -> statuses.ApiError | None:
    status = _status(pod, name)
    waiting = (status.get("state") or {}).get("waiting")
    if not waiting or status.get("lastState", {}).get("terminated"):
        return None
    reason = waiting.get("reason", "")
    if reason == "ErrImagePull":
        reason = "trying and failing to pull image"
    elif reason == "ImagePullBackOff":
        reason = "image can't be pulled"
    return statuses.bad_request(
        f'container "{name}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}'
    )


def _filter(call: Call, stamped: list[tuple[float, str]]) -> list[tuple[float, str]]:
    query = call.query
    since = query.get("sinceSeconds")
    if since:
        try:
            cutoff = time.time() - int(since)
        except ValueError:
            raise statuses.bad_request(
                f'strconv.ParseInt: parsing "{since}": invalid syntax'
            ) from None
        stamped = [line for line in stamped if line[0] >= cutoff]
    since_time = _epoch(query.get("sinceTime"))
    if since_time is not None:
        stamped = [line for line in stamped if line[0] >= since_time]
    tail = query.get("tailLines")
    if tail:
        try:
            count = int(tail)
        except ValueError:
            raise statuses.bad_request(
                f'strconv.ParseInt: parsing "{tail}": invalid syntax'
            ) from None
        stamped = stamped[-count:] if count > 0 else []
    return stamped


def _render(call: Call, stamped: list[tuple[float, str]]) -> bytes:
    with_stamps = call.query.get("timestamps") in ("true", "1")
    out = []
    for when, text in stamped:
        if with_stamps:
            whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
            nanos = round((when % 1) * 1e9) % 1_000_000_000
            out.append(f"{whole}.{nanos:09d}Z {text}\n")
        else:
            out.append(text + "\n")
    data = "".join(out).encode()
    limit = call.query.get("limitBytes")
    if limit:
        try:
            data = data[: max(0, int(limit))]
        except ValueError:
            raise statuses.bad_request(
                f'strconv.ParseInt: parsing "{limit}": invalid syntax'
            ) from None
    return data


def read(cluster: Cluster, call: Call) -> Reply:
    pod, name = _select(cluster, call)
    previous = call.query.get("previous") in ("true", "1")
    if previous:
        if not (_status(pod, name).get("lastState") or {}).get("terminated"):
            raise statuses.bad_request(
                f'previous terminated container "{name}" in pod '
                f'"{pod["metadata"]["name"]}" not found'
            )
    elif not (pod.get("spec") or {}).get("nodeName"):
        return Reply(200, b"", {"Content-Type": "text/plain"})  # type: ignore[arg-type]
    else:
        error = _waiting_error(pod, name)
        if error is not None:
            raise error
    stamped, done = _lines(cluster, pod, name, previous)
    data = _render(call, _filter(call, stamped))
    headers = {"Content-Type": "text/plain"}
    if call.query.get("follow") in ("true", "1") and not done and not previous:
        headers["X-Kubesim-Stream"] = "1"
    return Reply(200, data, headers)  # type: ignore[arg-type]


async def follow(
    request: web.Request, cluster: Cluster, call: Call, first: Reply
) -> web.StreamResponse:
    """Stream the log: what exists now, then the rest when the container ends."""
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "text/plain", "Cache-Control": "no-cache, private"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    sent = first.body
    assert isinstance(sent, bytes | bytearray)
    if sent:
        await response.write(bytes(sent))
    pod, name = _select(cluster, call)
    uid = pod["metadata"]["uid"]
    while True:
        await asyncio.sleep(_FOLLOW_POLL)
        pod_now: Any = cluster.store.get("pods", call.info.namespace, call.info.name)
        if pod_now is None or pod_now["metadata"]["uid"] != uid:
            break
        stamped, done = _lines(cluster, pod_now, name, False)
        data = _render(call, _filter(call, stamped))
        if len(data) > len(sent):
            await response.write(data[len(sent) :])
            sent = data
        if done:
            break
    await response.write_eof()
    return response
