"""Turn a request path and method into the attributes the apiserver reasons with.

Authorization messages, fault matching, counters and routing all need the same
answer to "which verb on which resource in which namespace", so it is computed once
per request, following ``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``:
``GET`` without a name is ``list`` (``watch`` with ``?watch=true``), a ``DELETE``
without a name is ``deletecollection``, and ``/api/v1/namespaces/{name}`` sets the
namespace to the name.
"""

from __future__ import annotations

from dataclasses import dataclass

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class RequestInfo:
    """What a request is about; ``is_resource`` is false for discovery and /version."""

    path: str
    verb: str
    is_resource: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    extra_parts: int = 0

    @property
    def resource_label(self) -> str:
        """Resource as counters and fault rules name it (``jobs``, ``jobs/status``)."""
        if not self.is_resource:
            return self.path
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse(method: str, path: str, watch: bool = False) -> RequestInfo:
    """Classify ``path``; ``watch`` reflects the ``watch`` query parameter."""
    parts = [p for p in path.strip("/").split("/") if p]
    non_resource_verb = method.lower()
    if len(parts) < 2 or parts[0] not in ("api", "apis"):
        return RequestInfo(path=path, verb=non_resource_verb)
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return RequestInfo(path=path, verb=non_resource_verb)
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return RequestInfo(path=path, verb=non_resource_verb)

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""

    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
        if verb == "delete" and not name:
            verb = "deletecollection"
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource=True,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
        extra_parts=max(0, len(rest) - 3),
    )
