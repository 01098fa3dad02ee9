"""The resource types kubesim serves, described once for routing, discovery and OpenAPI.

A ``Kind`` says where a resource lives (group, version, plural), whether it is
namespaced, which storage table holds it, which subresources and verbs it has, and
its short names and categories as ``kubectl api-resources`` shows them. Two kinds may
share one table: ``events`` in ``v1`` and in ``events.k8s.io/v1`` are the same
objects seen through two versions, as upstream stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Kind:
    """One served resource."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    table: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    definition: str = ""
    """OpenAPI definition name, e.g. ``io.k8s.api.batch.v1.Job``."""

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular(self) -> str:
        return self.kind.lower()


NAMESPACES = Kind(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    table="namespaces",
    short_names=("ns",),
    subresources=("status", "finalize"),
    definition="io.k8s.api.core.v1.Namespace",
)
PODS = Kind(
    "",
    "v1",
    "pods",
    "Pod",
    namespaced=True,
    table="pods",
    short_names=("po",),
    categories=("all",),
    subresources=("status", "log"),
    definition="io.k8s.api.core.v1.Pod",
)
EVENTS = Kind(
    "",
    "v1",
    "events",
    "Event",
    namespaced=True,
    table="events",
    short_names=("ev",),
    definition="io.k8s.api.core.v1.Event",
)
EVENTS_V1 = Kind(
    "events.k8s.io",
    "v1",
    "events",
    "Event",
    namespaced=True,
    table="events",
    short_names=("ev",),
    definition="io.k8s.api.events.v1.Event",
)
JOBS = Kind(
    "batch",
    "v1",
    "jobs",
    "Job",
    namespaced=True,
    table="jobs",
    categories=("all",),
    subresources=("status",),
    definition="io.k8s.api.batch.v1.Job",
)
SERVED = (NAMESPACES, PODS, EVENTS, EVENTS_V1, JOBS)
_BY_PATH = {(k.group, k.version, k.resource): k for k in SERVED}


def lookup(group: str, version: str, resource: str) -> Kind | None:
    return _BY_PATH.get((group, version, resource))


def kinds_of(group: str, version: str) -> list[Kind]:
    return [k for k in SERVED if (k.group, k.version) == (group, version)]


def for_table(table: str) -> Kind:
    """The primary kind of a storage table (core ``v1`` for events)."""
    return next(k for k in SERVED if k.table == table)
