"""Deletion: finalizers, the garbage collector's propagation policies, namespaces.

``delete_now_or_finalize`` is the generic registry's ``Delete``
(``staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go``): an object
without finalizers and without dependents to wait for is removed at once; otherwise
it gets ``deletionTimestamp`` (+ ``deletionGracePeriodSeconds: 0``) and, for
``Foreground``/``Orphan``, the ``foregroundDeletion``/``orphan`` finalizer, and stays
until its finalizers are gone. The ``GarbageCollector`` then does what
``pkg/controller/garbagecollector`` does: deletes the dependents of a removed owner
(background), deletes them first and then drops ``foregroundDeletion``
(foreground), or strips their ownerReferences and drops ``orphan``; and removes an
object whose last finalizer went. The ``NamespaceController``
(``pkg/controller/namespace/deletion``) deletes a terminating namespace's content,
sets its deletion conditions, and removes the ``kubernetes`` finalizer once the
content is gone and ``namespace_termination`` seconds passed; custom
``spec.finalizers`` keep it ``Terminating`` until ``/finalize`` removes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubesim.config import SimConfig
from kubesim.store import JSON, Change, Key, Store, key_of, rfc3339
from kubesim.timers import Timers

if TYPE_CHECKING:
    from kubesim.kubelet import Kubelet

log = logging.getLogger(__name__)
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
NAMESPACED = ("jobs", "pods", "events")
DELETION_CONDITIONS = (
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
)


def mark_deleting(meta: JSON, now: float, finalizer: str = "") -> JSON:
    """Metadata with ``deletionTimestamp`` set where ObjectMeta puts it (and a finalizer)."""
    before = (
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
    )
    out = {k: meta[k] for k in before if k in meta}
    out["deletionTimestamp"] = meta.get("deletionTimestamp") or rfc3339(now)
    out["deletionGracePeriodSeconds"] = meta.get("deletionGracePeriodSeconds", 0)
    out.update({k: v for k, v in meta.items() if k not in out})
    if finalizer and finalizer not in (meta.get("finalizers") or []):
        out["finalizers"] = [*(meta.get("finalizers") or []), finalizer]
    return out


def delete_now_or_finalize(
    store: Store, resource: str, obj: JSON, now: float, *, propagation: str
) -> tuple[JSON, bool]:
    """Delete ``obj``; returns (the last state, whether it is gone now)."""
    meta = obj["metadata"]
    finalizer = {"Foreground": FOREGROUND, "Orphan": ORPHAN}.get(propagation, "")
    if not meta.get("finalizers") and not finalizer:
        change = store.commit(resource, None, key=key_of(obj))
        return change.obj, True
    if meta.get("deletionTimestamp") and (
        not finalizer or finalizer in (meta.get("finalizers") or [])
    ):
        return obj, False
    new_meta = mark_deleting(meta, now, finalizer)
    if meta.get("deletionTimestamp") is None:
        new_meta["generation"] = (
            int(meta.get("generation") or 0) + 1 if "generation" in meta else None
        )
        if new_meta["generation"] is None:
            del new_meta["generation"]
    stored = store.commit(resource, {**obj, "metadata": new_meta}).obj
    return stored, False


class GarbageCollector:
    """Owner/dependent bookkeeping for Jobs and their Pods, and finalizer removal."""

    def __init__(
        self,
        store: Store,
        config: SimConfig,
        timers: Timers,
        kubelet: Kubelet,
        pods_of: dict[str, set[Key]],
    ) -> None:
        self.store, self.config, self.timers, self.kubelet = store, config, timers, kubelet
        self.pods_of = pods_of
        """The job controller's index: owner uid -> keys of its Pods."""
        store.listeners.append(self._observe)

    def _observe(self, change: Change) -> None:
        if change.resource in {"namespaces", "events"}:
            return
        meta = change.obj["metadata"]
        if change.type == "DELETED":
            if change.resource == "jobs":
                uid = meta["uid"]
                self.timers.soon(("gc-orphans", uid), lambda now: self._delete_dependents(uid, now))
            elif change.resource == "pods":
                self._owner_check(change.obj)
            return
        if meta.get("deletionTimestamp"):
            key = (change.resource, *key_of(change.obj))
            self.timers.soon(
                ("gc", key), lambda now: self._process(change.resource, key_of(change.obj), now)
            )

    def _dependents(self, uid: str) -> list[JSON]:
        found = []
        for key in list(self.pods_of.get(uid, ())):
            pod = self.store.get("pods", *key)
            refs = pod["metadata"].get("ownerReferences") or () if pod else ()
            if pod is not None and any(r.get("uid") == uid for r in refs):
                found.append(pod)
        return found

    def _delete_dependents(self, uid: str, now: float) -> None:
        from kubesim.jobcontroller import delete_pod  # noqa: PLC0415 - avoids an import cycle

        for pod in self._dependents(uid):
            delete_pod(self.store, self.kubelet, pod, now, grace=None)

    def _owner_check(self, pod: JSON) -> None:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("kind") == "Job":
                namespace = pod["metadata"].get("namespace", "")
                key = (namespace, ref.get("name", ""))
                self.timers.soon(("gc", ("jobs", *key)), self._processor("jobs", key))

    def _processor(self, resource: str, key: Key) -> Callable[[float], None]:
        return lambda now: self._process(resource, key, now)

    def _process(self, resource: str, key: Key, now: float) -> None:
        from kubesim.jobcontroller import delete_pod  # noqa: PLC0415 - avoids an import cycle

        obj = self.store.get(resource, *key)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FOREGROUND in finalizers:
            dependents = self._dependents(meta["uid"])
            blocking = list(dependents)
            for pod in blocking:
                delete_pod(self.store, self.kubelet, pod, now, grace=None)
            if any(self.store.get("pods", *key_of(d)) is not None for d in blocking):
                return
            finalizers.remove(FOREGROUND)
        if ORPHAN in finalizers:
            for pod in self._dependents(meta["uid"]):
                refs = [
                    r
                    for r in pod["metadata"].get("ownerReferences") or ()
                    if r.get("uid") != meta["uid"]
                ]
                new_meta = {k: v for k, v in pod["metadata"].items() if k != "ownerReferences"}
                if refs:
                    new_meta["ownerReferences"] = refs
                self.store.commit("pods", {**pod, "metadata": new_meta})
            finalizers.remove(ORPHAN)
        if finalizers != list(meta.get("finalizers") or []):
            new_meta = {k: v for k, v in meta.items() if k != "finalizers"}
            if finalizers:
                new_meta["finalizers"] = finalizers
            obj = self.store.commit(resource, {**obj, "metadata": new_meta}).obj
        if not obj["metadata"].get("finalizers"):
            if resource == "pods" and self.kubelet.runs.get(obj["metadata"]["uid"]):
                return  # the kubelet removes it once its containers stopped
            self.store.commit(resource, None, key=key)


class NamespaceController:
    """Empties terminating namespaces and removes them when finalized."""

    def __init__(self, store: Store, config: SimConfig, timers: Timers, kubelet: Kubelet) -> None:
        self.store, self.config, self.timers, self.kubelet = store, config, timers, kubelet
        self._since: dict[str, float] = {}
        store.listeners.append(self._observe)

    def reset(self) -> None:
        self._since.clear()

    def _observe(self, change: Change) -> None:
        if change.resource == "namespaces":
            if change.type != "DELETED" and change.obj["metadata"].get("deletionTimestamp"):
                name = change.obj["metadata"]["name"]
                self.timers.soon(("ns", name), lambda now: self.sync(name, now))
        elif change.type == "DELETED":
            namespace = change.obj["metadata"].get("namespace", "")
            ns = self.store.get("namespaces", "", namespace)
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.timers.soon(("ns", namespace), lambda now: self.sync(namespace, now))

    def sync(self, name: str, now: float) -> None:
        from kubesim.jobcontroller import delete_pod  # noqa: PLC0415 - avoids an import cycle

        ns = self.store.get("namespaces", "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        since = self._since.setdefault(ns["metadata"]["uid"], now)
        if "conditions" not in (ns.get("status") or {}):
            when = ns["metadata"]["deletionTimestamp"]
            conditions = [
                {
                    "type": t,
                    "status": "False",
                    "lastTransitionTime": when,
                    "reason": r,
                    "message": m,
                }
                for t, r, m in DELETION_CONDITIONS
            ]
            ns = self.store.commit(
                "namespaces", {**ns, "status": {**ns["status"], "conditions": conditions}}
            ).obj
        for job in list(self.store.items("jobs", name)):
            if not job["metadata"].get("deletionTimestamp"):
                delete_now_or_finalize(self.store, "jobs", job, now, propagation="Background")
        for pod in list(self.store.items("pods", name)):
            delete_pod(self.store, self.kubelet, pod, now, grace=None)
        remaining = any(True for _ in self.store.items("pods", name)) or any(
            True for _ in self.store.items("jobs", name)
        )
        if remaining:
            return
        self.store.flush("events")
        for event in list(self.store.items("events", name)):
            self.store.commit("events", None, key=key_of(event))
        due = since + self.config.namespace_termination
        if now < due:
            self.timers.at(due, ("ns", name), lambda at: self.sync(name, at))
            return
        finalizers = list((ns.get("spec") or {}).get("finalizers") or [])
        if "kubernetes" in finalizers:
            finalizers.remove("kubernetes")
            spec = {**(ns.get("spec") or {})}
            if finalizers:
                spec["finalizers"] = finalizers
            else:
                spec.pop("finalizers", None)
            ns = self.store.commit("namespaces", {**ns, "spec": spec}).obj
        if not (ns.get("spec") or {}).get("finalizers") and not ns["metadata"].get("finalizers"):
            self._since.pop(ns["metadata"]["uid"], None)
            self.store.commit("namespaces", None, key=("", name))
