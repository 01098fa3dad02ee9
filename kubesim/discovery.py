"""Discovery documents and ``/version``: enough for clients to find what we serve.

Shapes follow ``k8s.io/apimachinery/pkg/apis/meta/v1`` (``APIVersions``,
``APIGroupList``, ``APIResourceList``) and ``pkg/version`` (``version.Info``);
only the resources kubesim implements are listed, so a dynamic client does not
discover something it would then get 404s for.
"""

from __future__ import annotations

from kubesim.calls import JSON
from kubesim.config import ClusterIdentity

_VERBS = ["create", "delete", "get", "list"]


def version(identity: ClusterIdentity) -> JSON:
    major, minor = identity.kubernetes_version.split(".", 1)
    return {
        "major": major,
        "minor": f"{minor}+",
        "gitVersion": identity.git_version,
        "gitCommit": "2d5f260a9ea3fb59ba4ecaf3a0a7b2e9b9d3b4c1",
        "gitTreeState": "clean",
        "buildDate": "2025-01-10T21:33:47Z",
        "goVersion": "go1.22.10",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str) -> JSON:
    preferred = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [preferred], "preferredVersion": preferred}


def api_group_list() -> JSON:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group("batch")]}


def api_group(name: str) -> JSON | None:
    if name != "batch":
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _resource(name: str, kind: str, *, namespaced: bool, verbs: list[str], **extra: object) -> JSON:
    singular = "" if "/" in name else kind.lower()
    entry: JSON = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind}
    entry["verbs"] = verbs
    entry.update(extra)
    return entry


def core_v1() -> JSON:
    resources = [
        _resource("namespaces", "Namespace", namespaced=False, verbs=_VERBS, shortNames=["ns"]),
        _resource("namespaces/status", "Namespace", namespaced=False, verbs=["get"]),
    ]
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def batch_v1() -> JSON:
    resources = [
        _resource("jobs", "Job", namespaced=True, verbs=_VERBS, categories=["all"]),
        _resource("jobs/status", "Job", namespaced=True, verbs=["get"]),
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": resources,
    }
