"""Authorization: everything is allowed unless an admin deny rule matches.

Real clusters deny by absence of a RoleBinding; a test only needs "this caller may
not do that", so rules here are denials with wildcards. The 403 text is the one
``k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go``
(``forbiddenMessage``) builds, wrapped by ``errors.NewForbidden`` - note that the
object name goes before "is forbidden", and that a ``create`` has no name.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from kubesim import statuses
from kubesim.requestinfo import RequestInfo

ANONYMOUS = "system:anonymous"
_ids = itertools.count(1)


@dataclass(frozen=True)
class DenyRule:
    """Deny ``verb`` on ``resource`` in ``namespace`` (``*`` matches anything)."""

    id: int
    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    user: str = "*"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DenyRule:
        allowed = {"verb", "resource", "namespace", "name", "user"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown deny rule keys: {', '.join(sorted(unknown))}")
        values = {k: str(v) for k, v in body.items()}
        return cls(id=next(_ids), **values)

    def matches(self, info: RequestInfo, user: str) -> bool:
        return (
            _match(self.verb, info.verb)
            and _match(self.resource, info.resource_label, info.resource)
            and _match(self.namespace, info.namespace)
            and _match(self.name, info.name)
            and _match(self.user, user)
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _match(pattern: str, *values: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return any(v.startswith(pattern[:-1]) for v in values)
    return pattern in values


class Authorizer:
    """Holds the deny rules and answers allow/deny for a request."""

    def __init__(self) -> None:
        self.rules: list[DenyRule] = []

    def add(self, body: dict[str, Any]) -> DenyRule:
        rule = DenyRule.from_json(body)
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def check(self, info: RequestInfo, user: str) -> None:
        """Raise the apiserver's 403 if a deny rule matches."""
        if any(rule.matches(info, user) for rule in self.rules):
            raise forbidden_error(info, user)


def forbidden_message(info: RequestInfo, user: str) -> str:
    if not info.is_resource:
        return f'User "{user}" cannot {info.verb} path "{info.path}"'
    resource = info.resource_label
    if info.namespace:
        return (
            f'User "{user}" cannot {info.verb} resource "{resource}" in API group '
            f'"{info.api_group}" in the namespace "{info.namespace}"'
        )
    return (
        f'User "{user}" cannot {info.verb} resource "{resource}" in API group '
        f'"{info.api_group}" at the cluster scope'
    )


def forbidden_error(info: RequestInfo, user: str) -> statuses.ApiError:
    message = forbidden_message(info, user)
    if not info.is_resource:
        return statuses.forbidden("", "", "", message)
    return statuses.forbidden(info.resource, info.api_group, info.name, message)
