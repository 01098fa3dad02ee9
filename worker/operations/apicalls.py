"""What a Kubernetes API call is, in the bounded terms its metrics are labelled with.

``verb`` is Kubernetes's own (``get``, ``list``, ``watch``, ``create``, ``update``,
``patch``, ``delete``); ``resource`` is the plural resource with its subresource
(``jobs``, ``jobs/status``, ``pods/log``...) out of the few eksops calls, ``discovery``
for the API's own paths, ``other`` for anything else; ``code`` the HTTP status, or
``error`` when no answer came. Never a namespace or object name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from worker import metrics

RESOURCES = frozenset({"namespaces", "jobs", "pods", "events"})
SUBRESOURCES = frozenset({"status", "log"})
_HTTP_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Generated client methods (read_namespaced_job_status...): their first word, as a verb.
_METHOD_VERBS = {
    "read": "get",
    "list": "list",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}


def _resource(name: str, sub: str | None) -> str:
    if name not in RESOURCES:
        return "other"
    return f"{name}/{sub}" if sub in SUBRESOURCES else name


def from_path(method: str, path: str, query: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Return ``(verb, resource)`` of ``method path`` (``/api/v1/namespaces/x/pods``...)."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return method.lower(), "discovery"
    if not rest:
        return method.lower(), "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource
    named = len(rest) >= 2
    resource = _resource(rest[0], rest[2] if len(rest) >= 3 else None)
    if method.upper() == "GET":
        if named:
            return "get", resource
        watching = (query or {}).get("watch") in ("true", "1", "True")
        return ("watch" if watching else "list"), resource
    return _HTTP_VERBS.get(method.upper(), method.lower()), resource


def from_method(name: str) -> tuple[str, str]:
    """Return ``(verb, resource)`` of a generated client method, by its name."""
    first, _, rest = name.partition("_")
    rest = rest.removeprefix("namespaced_")
    words = rest.split("_")
    sub = words[1] if len(words) > 1 else None
    return _METHOD_VERBS.get(first, first), _resource(words[0] + "s", sub)


@contextmanager
def measured(verb: str, resource: str) -> Iterator[list[str]]:
    """Time the block as one call; the block puts the answer's status code in the list."""
    code = ["error"]
    started = time.perf_counter()
    try:
        yield code
    finally:
        metrics.kubernetes_call(verb, resource, code[0], time.perf_counter() - started)
