"""Discovery documents and ``/version``: enough for clients to find what we serve.

Shapes follow ``k8s.io/apimachinery/pkg/apis/meta/v1`` (``APIVersions``,
``APIGroupList``, ``APIResourceList``), ``pkg/version`` (``version.Info``) and, for
clients that ask for it with ``Accept: ...;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``
(kubectl 1.30+), the aggregated discovery of ``k8s.io/api/apidiscovery/v2``. Only
the resources kubesim implements are listed, so a client does not discover
something it would then get 404s for.
"""

from __future__ import annotations

from kubesim.calls import JSON
from kubesim.config import ClusterIdentity
from kubesim.kinds import SERVED, VERBS, Kind, kinds_of

_REVIEWS = {
    ("authorization.k8s.io", "v1"): [("selfsubjectaccessreviews", "SelfSubjectAccessReview")],
    ("authentication.k8s.io", "v1"): [("selfsubjectreviews", "SelfSubjectReview")],
}
GROUPS = ("batch", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io")


def version(identity: ClusterIdentity) -> JSON:
    major, minor = identity.kubernetes_version.split(".", 1)
    return {
        "major": major,
        "minor": f"{minor}+",
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(max(0, int(minor) - 1)),
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
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}


def api_group(name: str) -> JSON | None:
    if name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _entries(kind: Kind) -> list[JSON]:
    entry: JSON = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": VERBS,
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    entries = [entry]
    for sub in kind.subresources:
        verbs = {"status": ["get", "patch", "update"], "finalize": ["update"], "log": ["get"]}[sub]
        sub_kind = kind.kind if sub != "log" else "Pod"
        entries.append(
            {
                "name": f"{kind.resource}/{sub}",
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": sub_kind,
                "verbs": verbs,
            }
        )
    return entries


def resource_list(group: str, version_: str) -> JSON | None:
    kinds = kinds_of(group, version_)
    resources: list[JSON] = []
    for kind in kinds:
        resources += _entries(kind)
    for name, kind_name in _REVIEWS.get((group, version_), []):
        resources.append(
            {
                "name": name,
                "singularName": kind_name.lower(),
                "namespaced": False,
                "kind": kind_name,
                "verbs": ["create"],
            }
        )
    if not resources:
        return None
    gv = f"{group}/{version_}" if group else version_
    body: JSON = {"kind": "APIResourceList", "groupVersion": gv, "resources": resources}
    if group:
        body = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }
    return body


def core_v1() -> JSON:
    result = resource_list("", "v1")
    assert result is not None
    return result


def batch_v1() -> JSON:
    result = resource_list("batch", "v1")
    assert result is not None
    return result


def _aggregated_resources(group: str) -> list[JSON]:
    out = []
    for kind in SERVED:
        if kind.group != group:
            continue
        resource: JSON = {
            "resource": kind.resource,
            "responseKind": {"group": group, "version": kind.version, "kind": kind.kind},
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "singularResource": kind.singular,
            "verbs": VERBS,
        }
        if kind.short_names:
            resource["shortNames"] = list(kind.short_names)
        if kind.categories:
            resource["categories"] = list(kind.categories)
        subs = []
        for sub in kind.subresources:
            verbs = {"status": ["get", "patch", "update"], "finalize": ["update"], "log": ["get"]}[
                sub
            ]
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": {
                        "group": group,
                        "version": kind.version,
                        "kind": kind.kind if sub != "log" else "Pod",
                    },
                    "verbs": verbs,
                }
            )
        if subs:
            resource["subresources"] = subs
        out.append(resource)
    for (review_group, _version), reviews in _REVIEWS.items():
        if review_group == group:
            for name, kind_name in reviews:
                out.append(
                    {
                        "resource": name,
                        "responseKind": {"group": group, "version": "v1", "kind": kind_name},
                        "scope": "Cluster",
                        "singularResource": kind_name.lower(),
                        "verbs": ["create"],
                    }
                )
    return out


def aggregated_version(accept: str) -> str:
    """The apidiscovery version the first aggregated alternative of ``Accept`` asks for."""
    for alternative in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in alternative.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") in ("v2", "v2beta1"):
                return params["v"]
        elif alternative.strip().split(";")[0] in ("application/json", "*/*"):
            return ""
    return ""


def aggregated(legacy: bool, version: str = "v2") -> JSON:
    """``APIGroupDiscoveryList`` of ``/api`` (legacy) or ``/apis``."""
    groups = [""] if legacy else list(GROUPS)
    items = []
    for group in groups:
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": "v1",
                        "resources": _aggregated_resources(group),
                        "freshness": "Current",
                    }
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
