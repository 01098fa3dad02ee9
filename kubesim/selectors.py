"""``labelSelector`` and ``fieldSelector`` query parameters for list calls.

Supports what ``k8s.io/apimachinery/pkg/labels/selector.go`` parses: ``k=v``,
``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` and ``!k``, joined by
commas. Field selectors cover ``metadata.name`` and ``metadata.namespace``, the
fields every resource supports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubesim import statuses

Predicate = Callable[[Mapping[str, Any]], bool]
_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    cmp = _CMP_RE.match(text)
    if cmp:
        key, op, value = cmp.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET_RE.match(text)
    if not found:
        raise statuses.bad_request(f"unable to parse requirement: {text.strip()!r}")
    negate, key, op, values_text = found.groups()
    if op:
        if negate:
            raise statuses.bad_request(f"unable to parse requirement: {text.strip()!r}")
        values = {v.strip() for v in values_text.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_predicate(selector: str | None) -> Predicate:
    """A test on an object's ``metadata.labels``; an empty selector matches all."""
    if not selector:
        return lambda _obj: True
    requirements = [_requirement(r) for r in _split_requirements(selector)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return all(req(labels) for req in requirements)

    return matches


def field_predicate(selector: str | None) -> Predicate:
    if not selector:
        return lambda _obj: True
    checks: list[tuple[str, str, bool]] = []
    for part in _split_requirements(selector):
        cmp = _CMP_RE.match(part)
        if not cmp or cmp.group(1) not in ("metadata.name", "metadata.namespace"):
            raise statuses.bad_request(
                f'"{part.strip()}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        key, op, value = cmp.groups()
        checks.append((key.split(".", 1)[1], value, op == "!="))

    def matches(obj: Mapping[str, Any]) -> bool:
        meta = obj["metadata"]
        return all((meta.get(k, "") == v) != negated for k, v, negated in checks)

    return matches
