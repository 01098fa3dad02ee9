"""Tenants: who a caller is, what it may touch, how much it may submit.

A tenant is one upstream application sharing eksops. It has a **scope** (the clusters,
namespaces and operations it may use), **quotas** (submission rate, requests in
flight, largest bulk submission) and optionally a Job policy (``worker.policy``).
The gateway learns tenants from ``GATEWAY_KEYS_FILE`` (see
:mod:`producer.gateway.keyring`); library and CLI callers, who reach Redis directly
and are trusted by construction, may name one to get the same policy, quotas and
audit trail.

Pure: pydantic only, no Redis, no HTTP. Scope checks raise
:class:`~worker.errors.OutOfScope` naming the scope that refused the request, so the
gateway answers 403 and the library raises the same error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from worker.contracts import Operation
from worker.errors import OutOfScope
from worker.names import check_tenant_name
from worker.policy import JobPolicy

#: The tenant of ``GATEWAY_API_KEYS`` (and of a gateway without keys): unrestricted.
UNRESTRICTED = "default"
#: What a request without ``cluster`` targets: the worker's own cluster.
DEFAULT_CLUSTER = "default"

_PATTERN = re.compile(r"\*|[a-z0-9]([-a-z0-9]*[a-z0-9-])?\*?")


TenantName = Annotated[str, AfterValidator(check_tenant_name)]


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ValueError(
                f"namespace pattern {pattern!r} must be a namespace name, a prefix ending "
                "in '*' (such as team-a-*), or '*'"
            )
    return patterns


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Return whether ``name`` is one of ``patterns`` (exact names, or prefixes ending in ``*``).

    ``team-a-*`` matches ``team-a-x`` but neither ``team-a`` nor ``team-ab``: a prefix
    matches only names that go on after it.
    """
    for pattern in patterns:
        if pattern in ("*", name):
            return True
        if pattern.endswith("*") and len(name) > len(pattern) - 1 and name.startswith(pattern[:-1]):
            return True
    return False


class Scope(BaseModel):
    """What a tenant may touch; ``None`` (left out) means anything of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clusters: tuple[str, ...] | None = None
    namespaces: Annotated[tuple[str, ...], AfterValidator(_check_patterns)] | None = None
    operations: tuple[Operation, ...] | None = None

    def check(self, operation: Operation, arguments: Mapping[str, Any]) -> None:
        """Raise OutOfScope (naming the scope) unless ``operation`` on its target is allowed."""
        if self.operations is not None and operation not in self.operations:
            raise OutOfScope(
                f"Operation {operation.value} is outside this tenant's scope "
                f"(scope.operations: {', '.join(op.value for op in self.operations)})",
                details={"scope": "operations", "value": operation.value},
            )
        cluster = cluster_of(arguments)
        if self.clusters is not None and cluster not in self.clusters:
            raise OutOfScope(
                f"Cluster {cluster} is outside this tenant's scope "
                f"(scope.clusters: {', '.join(self.clusters)})",
                details={"scope": "clusters", "value": cluster},
            )
        namespace = namespace_of(arguments)
        if self.namespaces is not None and not matches(namespace, self.namespaces):
            raise OutOfScope(
                f"Namespace {namespace} is outside this tenant's scope "
                f"(scope.namespaces: {', '.join(self.namespaces) or 'none'})",
                details={"scope": "namespaces", "value": namespace},
            )


def cluster_of(arguments: Mapping[str, Any]) -> str:
    """Return the cluster a request targets (``default``: the worker's own)."""
    cluster = arguments.get("cluster")
    if isinstance(cluster, Mapping):
        return str(cluster.get("name") or DEFAULT_CLUSTER)
    name = getattr(cluster, "name", None)
    return str(name) if name else DEFAULT_CLUSTER


def namespace_of(arguments: Mapping[str, Any]) -> str:
    """Return the namespace a request targets (a namespace operation's own name)."""
    value = arguments.get("namespace_name", arguments.get("namespace", "default"))
    return str(value).strip()


class Quotas(BaseModel):
    """How much a tenant may submit; ``None`` (left out) lifts that limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Submitting calls per second (a bulk call is one), refilling a bucket of ``burst``.
    submissions_per_second: float | None = Field(default=None, gt=0, le=100_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
    # Requests submitted and not yet ended (bulk items count one each).
    in_flight: int | None = Field(default=None, ge=1, le=10_000_000)
    # Most items in one bulk submission.
    max_bulk_items: int | None = Field(default=None, ge=1, le=1_000_000)

    @property
    def bucket_size(self) -> int:
        """Return the token bucket's size: ``burst``, or one second of the rate."""
        if self.burst is not None:
            return self.burst
        return max(1, int(self.submissions_per_second or 1))


class Tenant(BaseModel):
    """One caller of eksops: its name, scope, quotas and Job policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TenantName
    scope: Scope = Field(default_factory=Scope)
    quotas: Quotas = Field(default_factory=Quotas)
    policy: JobPolicy | None = None

    @property
    def unrestricted(self) -> bool:
        """Return whether this tenant may see and touch everything (``GATEWAY_API_KEYS``)."""
        return self.name == UNRESTRICTED and self.scope == Scope()

    def may_see(self, owner: str | None) -> bool:
        """Return whether a request, batch or Job of tenant ``owner`` is visible to this one."""
        return self.unrestricted or owner == self.name


#: The one tenant of a gateway configured with ``GATEWAY_API_KEYS`` (or none).
UNRESTRICTED_TENANT = Tenant(name=UNRESTRICTED)
