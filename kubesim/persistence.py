"""Keep the cluster across restarts: ``--state-dir`` saves and restores the objects.

What is saved (``cluster.json`` in the state directory, written to a temporary
file and renamed, so a crash mid-write leaves the previous copy): every object, the
resourceVersion counter, and the controllers' notes - each Pod's plan and stage,
each Job's counted Pods, the images on the node. It is written when something
changed, at most every ``interval`` seconds, and at shutdown (SIGTERM/SIGINT).

On start the objects come back with their uids and versions; the history starts
empty at the restored version (so a watch resuming from before the restart gets
410 Gone, as after an etcd compaction), and the controllers resume from the wall
clock: the kubelet replays every step that fell due while kubesim was down, with
the planned timestamps, so a Pod that should have finished is finished and its Job
completes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from kubesim.cluster import Cluster
from kubesim.jobcontroller import JobRun
from kubesim.kubelet import PodRun
from kubesim.store import RESOURCES, key_of

log = logging.getLogger(__name__)
FILE = "cluster.json"
FORMAT = 1


def snapshot(cluster: Cluster) -> dict[str, Any]:
    store = cluster.store
    store.flush()
    return {
        "format": FORMAT,
        "resourceVersion": store.rv,
        "objects": {r: list(store.tables[r].values()) for r in RESOURCES},
        "pods": {uid: run.as_dict() for uid, run in cluster.kubelet.runs.items()},
        "jobs": {uid: run.as_dict() for uid, run in cluster.jobs.runs.items()},
        "pulled": sorted(cluster.kubelet.pulled),
    }


def save(cluster: Cluster, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILE
    tmp = directory / f".{FILE}.{os.getpid()}.tmp"
    data = orjson.dumps(snapshot(cluster))
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(target)
    cluster.store.dirty = False
    log.debug("saved %d bytes of cluster state to %s", len(data), target)


def restore(cluster: Cluster, directory: Path) -> bool:  # noqa: PLR0912 - one pass of a controller or handler
    """Load a saved cluster into an empty one; False when there is nothing to load."""
    path = directory / FILE
    if not path.exists():
        return False
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("ignoring unreadable cluster state %s: %s", path, exc)
        return False
    if data.get("format") != FORMAT:
        log.warning("ignoring cluster state %s of another format", path)
        return False
    store = cluster.store
    for table in RESOURCES:
        store.tables[table].clear()
        for obj in data["objects"].get(table, []):
            store.load(table, obj)
    store.rv = int(data["resourceVersion"])
    store.compacted = store.rv
    store.history.clear()
    cluster.kubelet.pulled = set(data.get("pulled") or [])
    cluster.kubelet.runs = {uid: PodRun.from_dict(r) for uid, r in (data.get("pods") or {}).items()}
    cluster.jobs.runs = {uid: JobRun.from_dict(r) for uid, r in (data.get("jobs") or {}).items()}
    for pod in store.tables["pods"].values():
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("controller"):
                cluster.jobs.pods_of[ref["uid"]].add(key_of(pod))
    for pod in list(store.tables["pods"].values()):
        cluster.kubelet.resume(pod)
    for job in list(store.tables["jobs"].values()):
        cluster.jobs.adopt(job)
    for event in store.tables["events"].values():
        cluster.recorder.adopt(event)
    for namespace in list(store.tables["namespaces"].values()):
        if namespace["metadata"].get("deletionTimestamp"):
            name = namespace["metadata"]["name"]
            cluster.timers.soon(("ns", name), _namespace_sync(cluster, name))
    store.dirty = False
    log.info(
        "restored %d objects at resourceVersion %d from %s",
        sum(len(t) for t in store.tables.values()),
        store.rv,
        path,
    )
    return True


def _namespace_sync(cluster: Cluster, name: str) -> Callable[[float], None]:
    return lambda now: cluster.namespaces.sync(name, now)


async def autosave(get_cluster: Any, directory: Path, interval: float) -> None:
    """Save whenever something changed, at most every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        cluster = get_cluster()
        if cluster.store.dirty:
            with contextlib.suppress(OSError):
                save(cluster, directory)
