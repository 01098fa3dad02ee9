"""From a request's arguments to one operation call, as ``worker.catalog`` declares it.

Validates the arguments with the same contracts producers used (a message can reach
the queue by other means), resolves the request's cluster, calls the operation's
function with the keywords its declaration binds, and returns its result as JSON-ready
data. The engine (``worker.engine``) is the only caller.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from worker.catalog import Run, Spec
from worker.errors import InvalidRequest
from worker.runtime import Runtime
from worker.validation import explain


@functools.cache
def operation_function(path: str) -> Callable[..., BaseModel]:
    """Return the function at ``module:name`` (imported once)."""
    module, _, name = path.partition(":")
    function: Callable[..., BaseModel] = getattr(importlib.import_module(module), name)
    return function


def parse(runtime: Runtime, spec: Spec, arguments: dict[str, Any]) -> Any:
    """Validate ``arguments`` against the operation's contract, as producers did."""
    try:
        return spec.request.model_validate(arguments, context=runtime.limits.as_context())
    except ValidationError as exc:
        raise InvalidRequest(explain(exc, what=f"{spec.task_name} request")) from None


@dataclass(frozen=True)
class Executed:
    """An operation's result (the seed's body) and what it links the request to."""

    result: dict[str, Any]
    links: dict[str, str] = field(default_factory=dict)


def execute(
    runtime: Runtime, spec: Spec, arguments: dict[str, Any], *, request_id: str, attempt: int
) -> Executed:
    """Run ``spec``'s operation for one request; return the seed's body and its links."""
    request = parse(runtime, spec, arguments)
    run = Run(
        request_id=request_id,
        attempt=attempt,
        protected_namespaces=runtime.settings.protected_namespaces,
    )
    cluster = runtime.clusters.get(request.cluster)
    result = operation_function(spec.function)(cluster=cluster, **spec.bind(request, run))
    body = dict(result.model_dump(mode="json"))
    links = spec.links(body, cluster.target.key) if spec.links is not None else {}
    return Executed(body, links)
