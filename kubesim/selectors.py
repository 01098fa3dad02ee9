"""``labelSelector`` and ``fieldSelector`` query parameters, for lists and watches.

Label selectors follow the lexer and parser of
``k8s.io/apimachinery/pkg/labels/selector.go``: ``=``, ``==``, ``!=``, ``in``,
``notin``, ``gt`` (``>``), ``lt`` (``<``), exists and ``!key``, with its error texts
(``unable to parse requirement: ...``, ``found 'x', expected: ...``) and label-key
validation. Field selectors support what each type's field label conversion allows
(``pkg/apis/*/v1/conversion.go``: ``status.successful`` for Jobs, ``status.phase``
for Namespaces and Pods, ``spec.nodeName``, ``involvedObject.*`` for Events...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubesim import statuses

Predicate = Callable[[Mapping[str, Any]], bool]
_SPECIAL = "=!(),><"
_TOKENS = {
    "!": "!",
    "!=": "!=",
    "(": "(",
    ")": ")",
    ",": ",",
    "=": "=",
    "==": "==",
    ">": ">",
    "<": "<",
    "in": "in",
    "notin": "notin",
}
_OPERATORS = ["=", "==", "!=", "in", "notin", "gt", "lt"]
_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(f"^{_NAME_FMT}$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    f"used for validation is '{_NAME_FMT}')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?"
    "[A-Za-z0-9])?')"
)
FIELDS: dict[str, tuple[str, ...]] = {
    "namespaces": ("metadata.name", "status.phase"),
    "jobs": ("metadata.name", "metadata.namespace", "status.successful"),
    "pods": (
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "metadata.name",
        "metadata.namespace",
    ),
}


def _lex(text: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            items.append(("END", ""))
            return items
        if text[i] in _SPECIAL:
            buffer, last = "", None
            while i < n and text[i] in _SPECIAL:
                buffer += text[i]
                if buffer in _TOKENS:
                    last = buffer
                    i += 1
                elif last is not None:
                    break
                else:
                    i += 1
            if last is None:
                items.append(("ERROR", f"error expected: keyword found '{buffer}'"))
            else:
                items.append((_TOKENS[last], last))
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in " \t\r\n":
            i += 1
        word = text[start:i]
        items.append((_TOKENS.get(word, "ID"), word) if word in ("in", "notin") else ("ID", word))


def _key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and not prefix:
        errors.append("prefix part must be non-empty")
    elif prefix and (len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        errors.append(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?"
            "(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    if not name:
        errors.append("name part must be non-empty")
    else:
        if len(name) > 63:
            errors.append("name part must be no more than 63 characters")
        if not _NAME_RE.match(name):
            errors.append(_NAME_MSG)
    if errors:
        return f'<nil>: Invalid value: "{key}": ' + "; ".join(errors)
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        if values and tok in ("in", "notin"):
            tok = "ID"
        return tok, lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[tuple[str, str, list[str]]]:
        requirements = []
        while True:
            tok, lit = self.peek()
            if tok in ("ID", "!"):
                try:
                    requirements.append(self.requirement())
                except ValueError as exc:
                    raise ValueError(f"unable to parse requirement: {exc}") from None
                tok2, lit2 = self.take()
                if tok2 == "END":
                    return requirements
                if tok2 == ",":
                    tok3, lit3 = self.peek()
                    if tok3 not in ("ID", "!"):
                        raise ValueError(f"found '{lit3}', expected: identifier after ','")
                    continue
                raise ValueError(f"found '{lit2}', expected: ',' or 'end of string'")
            if tok == "END":
                return requirements
            raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> tuple[str, str, list[str]]:
        operator = ""
        tok, lit = self.take()
        if tok == "!":
            operator = "!"
            tok, lit = self.take()
        if tok != "ID":
            raise ValueError(f"found '{lit}', expected: identifier")
        error = _key_error(lit)
        if error:
            raise ValueError(error)
        key = lit
        if self.peek()[0] in ("END", ","):
            return key, operator or "exists", []
        if operator == "!":
            return key, "!", []
        tok, lit = self.take(values=False)
        ops = {"in": "in", "=": "=", "==": "==", ">": "gt", "<": "lt", "notin": "notin", "!=": "!="}
        if tok not in ops:
            raise ValueError(f"found '{lit}', expected: {', '.join(_OPERATORS)}")
        op = ops[tok]
        values = self.values() if op in ("in", "notin") else self.exact()
        for value in values:
            if op in ("gt", "lt"):
                try:
                    int(value)
                except ValueError:
                    raise ValueError(
                        f"values[0]: Invalid value: \"{value}\": for 'Gt', 'Lt' operators, "
                        "the value must be an integer"
                    ) from None
            elif value and (len(value) > 63 or not _NAME_RE.match(value)):
                raise ValueError(f'[{key}]: Invalid value: "{value}": {_VALUE_MSG}')
        return key, op, values

    def exact(self) -> list[str]:
        tok, _ = self.peek()
        if tok in ("END", ","):
            return [""]
        tok, lit = self.take()
        if tok == "ID":
            return [lit]
        raise ValueError(f"found '{lit}', expected: identifier")

    def values(self) -> list[str]:
        tok, lit = self.take()
        if tok != "(":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == ")":
            self.take()
            return [""]
        if tok not in ("ID", ","):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        found: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == "ID":
                found.add(lit)
                tok2, lit2 = self.peek()
                if tok2 == ",":
                    continue
                if tok2 == ")":
                    self.take()
                    return sorted(found)
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == ",":
                if not found:
                    found.add("")
                tok2, _ = self.peek()
                if tok2 == ")":
                    found.add("")
                    self.take()
                    return sorted(found)
                if tok2 == ",":
                    found.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")


def _matcher(key: str, op: str, values: list[str]) -> Callable[[Mapping[str, str]], bool]:
    if op == "exists":
        return lambda labels: key in labels
    if op == "!":
        return lambda labels: key not in labels
    if op in ("=", "=="):
        value = values[0]
        return lambda labels: labels.get(key) == value
    if op == "!=":
        value = values[0]
        return lambda labels: labels.get(key) != value
    if op == "in":
        allowed = set(values)
        return lambda labels: labels.get(key) in allowed
    if op == "notin":
        banned = set(values)
        return lambda labels: labels.get(key) not in banned
    bound = int(values[0])

    def compare(labels: Mapping[str, str]) -> bool:
        try:
            number = int(labels[key])
        except (KeyError, ValueError):
            return False
        return number > bound if op == "gt" else number < bound

    return compare


def parse_labels(selector: str) -> list[tuple[str, str, list[str]]]:
    try:
        return _Parser(selector).parse()
    except ValueError as exc:
        raise statuses.bad_request(str(exc)) from None


def label_predicate(selector: str | None) -> Predicate:
    """A test on an object's ``metadata.labels``; an empty selector matches all."""
    if not selector or not selector.strip():
        return lambda _obj: True
    matchers = [_matcher(*r) for r in parse_labels(selector)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return all(m(labels) for m in matchers)

    return matches


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "status.successful":
        return str(int((obj.get("status") or {}).get("succeeded") or 0))
    if path == "source":
        return str((obj.get("source") or {}).get("component") or "")
    if path == "status.podIPs":
        ips = (obj.get("status") or {}).get("podIPs") or []
        return ips[0]["ip"] if ips else ""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _split_fields(text: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def field_predicate(selector: str | None, resource: str = "jobs") -> Predicate:
    """A test on the fields the resource's field selectors support."""
    if not selector or not selector.strip():
        return lambda _obj: True
    allowed = FIELDS.get(resource, ("metadata.name", "metadata.namespace"))
    checks: list[tuple[str, str, bool]] = []
    for part in _split_fields(selector):
        if not part:
            continue
        found = re.match(r"^([^=!]+?)(!=|==|=)(.*)$", part)
        if not found:
            raise statuses.bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        key, op, value = found.group(1).strip(), found.group(2), found.group(3)
        if key not in allowed:
            listing = ", ".join(f'"{a}"' for a in allowed)
            raise statuses.bad_request(f'"{key}" is not a known field selector: only {listing}')
        checks.append((key, value.replace("\\", ""), op == "!="))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, k) == v) != negated for k, v, negated in checks)

    return matches


def match_labels_selector(selector: Mapping[str, Any]) -> str:
    """``metav1.FormatLabelSelector`` for Table columns."""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = str(expr.get("operator", "")).lower()
        values = ",".join(expr.get("values") or [])
        if op in ("in", "notin"):
            parts.append(f"{expr.get('key')} {op} ({values})")
        elif op == "exists":
            parts.append(str(expr.get("key")))
        else:
            parts.append(f"!{expr.get('key')}")
    return ",".join(parts) or "<none>"
