"""The compact text form of ``protoschema``: written by ``protogen``, read at import.

``MESSAGES`` maps a message's full name to its fields by number, each
``[json name, label, type]`` plus ``"ptr"`` for a Go pointer field. As text, one
line per message, grouped under ``@package`` lines (the name up to its first
capitalised part)::

    @k8s.io.api.batch.v1
    Job 1=metadata:o:^apimachinery.pkg.apis.meta.v1.ObjectMeta 2=spec:o:JobSpec ...

A field is ``number=name:label:type``; the label is ``o`` (optional), ``r``
(repeated) or ``m`` (map, whose type is the value's); the type is a scalar, a
message of the same package by its short name, or ``^`` and a name below
``k8s.io.``; a trailing ``*`` marks a pointer.
"""

from __future__ import annotations

Messages = dict[str, dict[int, list[str]]]
SCALARS = frozenset(
    {
        "string",
        "int32",
        "int64",
        "bool",
        "bytes",
        "double",
        "float",
        "uint32",
        "uint64",
        "sint32",
        "sint64",
        "fixed32",
        "fixed64",
    }
)
_LABELS = {"optional": "o", "repeated": "r", "map": "m"}
_NAMES = {v: k for k, v in _LABELS.items()}
_ROOT = "k8s.io."


def package_of(name: str) -> str:
    """``k8s.io.api.core.v1.Pod.Inner`` -> ``k8s.io.api.core.v1``."""
    parts = name.split(".")
    for index, part in enumerate(parts):
        if part[:1].isupper():
            return ".".join(parts[:index])
    return name.rpartition(".")[0]


def _type_text(kind: str, package: str) -> str:
    if kind in SCALARS:
        return kind
    if package_of(kind) == package:
        return kind[len(package) + 1 :]
    if not kind.startswith(_ROOT):
        raise ValueError(f"type outside {_ROOT}: {kind}")
    return "^" + kind[len(_ROOT) :]


def render(messages: Messages) -> str:
    """The table of ``messages`` (sorted by name, fields by number)."""
    lines: list[str] = []
    package = None
    for name in sorted(messages):
        here = package_of(name)
        if here != package:
            package = here
            lines.append("@" + here)
        fields = []
        for number in sorted(messages[name]):
            field = messages[name][number]
            pointer = "*" if field[3:] == ["ptr"] else ""
            text = _type_text(field[2], here)
            fields.append(f"{number}={field[0]}:{_LABELS[field[1]]}:{text}{pointer}")
        lines.append(" ".join([name[len(here) + 1 :], *fields]))
    return "\n".join(lines) + "\n"


def parse(table: str) -> Messages:
    """``MESSAGES`` from its table."""
    messages: Messages = {}
    package = ""
    for line in table.splitlines():
        if not line:
            continue
        if line[0] == "@":
            package = line[1:]
            continue
        short, *fields = line.split(" ")
        found: dict[int, list[str]] = {}
        for field in fields:
            number, _, rest = field.partition("=")
            name, label, kind = rest.split(":")
            extra = []
            if kind.endswith("*"):
                kind, extra = kind[:-1], ["ptr"]
            if kind[0] == "^":
                kind = _ROOT + kind[1:]
            elif kind not in SCALARS:
                kind = f"{package}.{kind}"
            found[int(number)] = [name, _NAMES[label], kind, *extra]
        messages[f"{package}.{short}"] = found
    return messages
