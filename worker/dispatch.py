"""From a request's arguments to one operation call, as ``worker.catalog`` declares it.

Validates the arguments with the same contracts producers used (a message can reach
the queue by other means), checks a tenant's scope and Job policy again when the
worker has the keys file and messages are signed (:func:`recheck_tenant`: a message
written by hand cannot widen a scope), resolves the request's cluster, calls the operation's
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

from worker import policy
from worker.catalog import Run, Spec
from worker.contracts import Operation
from worker.errors import InvalidRequest, OutOfScope
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


def recheck_tenant(runtime: Runtime, spec: Spec, request: Any) -> None:
    """Raise OutOfScope or PolicyViolation if the request's tenant may not do this.

    Only with the keys file (signing on): a request naming no tenant comes from a
    trusted producer; one naming a tenant the file does not know is refused.
    """
    watch = runtime.tenants
    name = getattr(request, "tenant", None)
    if watch is None or name is None:
        return
    tenant = watch.current().by_name.get(name)
    if tenant is None:
        raise OutOfScope(
            f"Tenant {name} is not in the keys file; {spec.operation.value} refused",
            details={"scope": "tenant", "value": name},
        )
    arguments = request.model_dump(exclude_none=True)
    tenant.scope.check(spec.operation, arguments)
    if spec.operation is Operation.CREATE_JOB:
        policy.apply(tenant.policy, arguments["job_manifest"])


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
    recheck_tenant(runtime, spec, request)
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
