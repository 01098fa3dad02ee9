"""Server-side apply and ``managedFields``, in the shape structured-merge-diff writes.

Each write records its manager in ``metadata.managedFields``: ``manager``,
``operation`` (``Update`` for create/update/patch, ``Apply`` for apply),
``apiVersion``, ``time``, ``fieldsType: FieldsV1`` and ``fieldsV1`` (``f:`` fields,
``k:{...}`` list-map keys, ``v:`` set values, ``.`` for the element itself), plus
``subresource`` for status writes (``staging/src/k8s.io/apimachinery/pkg/util/
managedfields``). ``apply`` merges the applied configuration into the live object by
the schema's list-map keys, removes fields the manager applied before but no longer
does, and refuses - 409 ``Conflict`` "Apply failed with N conflict(s): conflict
with "M" using GV: .path", a ``FieldManagerConflict`` cause per field - to take a
field another manager set to a different value, unless ``force=true``, which moves
the field to the applier. Ownership is tracked per leaf field; kubesim does not
model ownership of whole maps or atomic structs separately.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubesim import openapischema as oas
from kubesim import statuses
from kubesim.kinds import Kind
from kubesim.store import rfc3339

JSON = dict[str, Any]
Path = tuple[str, ...]
_IGNORED_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
)


def _leaves(obj: Any, schema: JSON, prefix: Path, out: dict[Path, Any]) -> None:
    if isinstance(obj, dict):
        if not obj:
            out[prefix] = {}
        for key, value in obj.items():
            if not prefix and key in ("kind", "apiVersion", "status"):
                continue
            if prefix == ("f:metadata",) and key in _IGNORED_META:
                continue
            _leaves(value, oas.child(schema, key), (*prefix, f"f:{key}"), out)
        return
    if isinstance(obj, list):
        strategy, keys = oas.list_keys(schema)
        item_schema = oas.child(oas.resolve(schema), "[]")
        if strategy == "map":
            for item in obj:
                if isinstance(item, dict):
                    ident = {k: item[k] for k in keys if k in item}
                    element = (*prefix, "k:" + json.dumps(ident, separators=(",", ":")))
                    out[(*element, ".")] = None
                    _leaves({k: v for k, v in item.items()}, item_schema, element, out)
            return
        if strategy == "set":
            for item in obj:
                out[(*prefix, "v:" + json.dumps(item, separators=(",", ":")))] = item
            return
        out[prefix] = obj
        return
    out[prefix] = obj


def leaves(obj: JSON, schema: JSON) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    _leaves(obj, schema, (), out)
    return out


def to_fields(paths: Any) -> JSON:
    tree: JSON = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def from_fields(tree: JSON, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value and key != ".":
            out |= from_fields(value, path)
        else:
            out.add(path)
    return out


def fields_of(obj: JSON, definition: str = "") -> JSON:
    return to_fields(leaves(obj, oas.root(definition) if definition else {}))


def entry(  # noqa: PLR0917 - keyword use at every call site
    manager: str, operation: str, api_version: str, fields: JSON, now: float, subresource: str = ""
) -> JSON:
    out: JSON = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": rfc3339(now),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        out["subresource"] = subresource
    return out


def record_update(  # noqa: PLR0917 - keyword use at every call site
    meta: JSON,
    old_meta: JSON,
    manager: str,
    operation: str,
    api_version: str,
    subresource: str,
    now: float,
    new: JSON,
    old: JSON,
) -> JSON:
    """``meta`` with the write's manager added (or updated) in ``managedFields``."""
    if not manager:
        return meta
    definition = _definition(new)
    schema = oas.root(definition)
    old_leaves = leaves(old, schema)
    new_leaves = leaves({**new, "metadata": meta}, schema)
    changed = {p for p, v in new_leaves.items() if old_leaves.get(p, _MISSING) != v}
    if not changed and old_meta.get("managedFields"):
        return {**meta, "managedFields": old_meta["managedFields"]}
    managed = [dict(m) for m in old_meta.get("managedFields") or []]
    mine = next(
        (
            m
            for m in managed
            if m.get("manager") == manager
            and m.get("operation") == operation
            and m.get("subresource", "") == subresource
        ),
        None,
    )
    owned = from_fields(mine["fieldsV1"]) if mine else set()
    owned |= changed
    owned = {p for p in owned if p in new_leaves}
    for other in managed:
        if other is not mine:
            theirs = from_fields(other.get("fieldsV1") or {}) - changed
            other["fieldsV1"] = to_fields(theirs)
    managed = [m for m in managed if m is mine or m.get("fieldsV1")]
    new_entry = entry(
        manager, operation, old.get("apiVersion") or api_version, to_fields(owned), now, subresource
    )
    if mine is not None:
        managed[managed.index(mine)] = new_entry
    else:
        managed.append(new_entry)
    return {**meta, "managedFields": managed}


_MISSING = object()


def _definition(obj: JSON) -> str:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, version = api_version.rpartition("/")
    table = {
        ("", "Namespace"): "io.k8s.api.core.v1.Namespace",
        ("", "Pod"): "io.k8s.api.core.v1.Pod",
        ("", "Event"): "io.k8s.api.core.v1.Event",
        ("batch", "Job"): "io.k8s.api.batch.v1.Job",
        ("events.k8s.io", "Event"): "io.k8s.api.events.v1.Event",
    }
    del version
    return table.get((group, kind), "")


def _merge(live: Any, applied: Any, schema: JSON) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = _merge(live.get(key), value, oas.child(schema, key))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        strategy, keys = oas.list_keys(schema)
        item_schema = oas.child(oas.resolve(schema), "[]")
        if strategy == "map" and keys:
            out_list = [copy.deepcopy(i) for i in live]
            for item in applied:
                if not isinstance(item, dict):
                    continue
                index = next(
                    (
                        i
                        for i, o in enumerate(out_list)
                        if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys)
                    ),
                    None,
                )
                if index is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[index] = _merge(out_list[index], item, item_schema)
            return out_list
        if strategy == "set":
            return list(dict.fromkeys([*live, *applied]))
    return copy.deepcopy(applied)


def _remove(obj: JSON, path: Path) -> None:
    node: Any = obj
    for part in path[:-1]:
        node = _step(node, part)
        if node is None:
            return
    last = path[-1]
    if isinstance(node, dict) and last.startswith("f:"):
        node.pop(last[2:], None)
    elif isinstance(node, list) and last.startswith("v:"):
        value = json.loads(last[2:])
        if value in node:
            node.remove(value)


def _step(node: Any, part: str) -> Any:
    if part.startswith("f:") and isinstance(node, dict):
        return node.get(part[2:])
    if part.startswith("k:") and isinstance(node, list):
        ident = json.loads(part[2:])
        return next(
            (
                i
                for i in node
                if isinstance(i, dict) and all(i.get(k) == v for k, v in ident.items())
            ),
            None,
        )
    return None


def _value_at(obj: JSON, path: Path) -> Any:
    node: Any = obj
    for part in path:
        if part == ".":
            return node
        if part.startswith("v:"):
            return (
                json.loads(part[2:])
                if isinstance(node, list) and json.loads(part[2:]) in node
                else _MISSING
            )
        node = _step(node, part)
        if node is None:
            return _MISSING
    return node


def apply(
    live: JSON,
    applied: JSON,
    manager: str,
    *,
    force: bool,
    kind: Kind,
    subresource: str,
    now: float,
) -> JSON:
    """The object after ``manager`` applies ``applied`` to ``live`` (raises on conflicts)."""
    schema = oas.root(kind.definition)
    applied_leaves = leaves(applied, schema)
    applied_paths = set(applied_leaves)
    managed = [dict(m) for m in live["metadata"].get("managedFields") or []]
    conflicts: list[tuple[str, str, str]] = []
    for other in managed:
        if other.get("manager") == manager and other.get("operation") == "Apply":
            continue
        theirs = from_fields(other.get("fieldsV1") or {})
        for path in sorted(theirs & applied_paths):
            if path[-1] == ".":
                continue
            if _value_at(live, path) != applied_leaves[path]:
                conflicts.append(
                    (str(other.get("manager")), str(other.get("apiVersion")), _dotted(path))
                )
    if conflicts and not force:
        raise _conflict_error(kind, live["metadata"]["name"], conflicts)
    mine = next(
        (
            m
            for m in managed
            if m.get("manager") == manager
            and m.get("operation") == "Apply"
            and m.get("subresource", "") == subresource
        ),
        None,
    )
    previously = from_fields(mine["fieldsV1"]) if mine else set()
    result = _merge(
        copy.deepcopy(live),
        {k: v for k, v in applied.items() if k not in ("kind", "apiVersion")},
        schema,
    )
    others = set()
    for other in managed:
        if other is not mine:
            others |= from_fields(other.get("fieldsV1") or {})
    for path in sorted(previously - applied_paths - others, key=len, reverse=True):
        if path[-1] != ".":
            _remove(result, path)
    for other in managed:
        if other is not mine and force:
            other["fieldsV1"] = to_fields(from_fields(other.get("fieldsV1") or {}) - applied_paths)
    managed = [m for m in managed if m is not mine and m.get("fieldsV1")]
    managed.append(
        entry(
            manager,
            "Apply",
            live.get("apiVersion") or kind.group_version,
            to_fields(applied_paths),
            now,
            subresource,
        )
    )
    result["metadata"] = {**result["metadata"], "managedFields": managed}
    applied_object: JSON = result
    return applied_object


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith("k:"):
            text += (
                "["
                + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(part[2:]).items())
                + "]"
            )
        elif part.startswith("v:"):
            text += f"[{part[2:]}]"
    return text


def _conflict_error(
    kind: Kind, name: str, conflicts: list[tuple[str, str, str]]
) -> statuses.ApiError:
    count = len(conflicts)
    if count == 1:
        manager, version, path = conflicts[0]
        text = f'Apply failed with 1 conflict: conflict with "{manager}" using {version}: {path}'
    else:
        by_manager: dict[tuple[str, str], list[str]] = {}
        for manager, version, path in conflicts:
            by_manager.setdefault((manager, version), []).append(path)
        parts = []
        for (manager, version), paths in by_manager.items():
            if len(paths) == 1:
                parts.append(f'conflict with "{manager}" using {version}: {paths[0]}')
            else:
                listing = "\n".join(f"- {p}" for p in paths)
                parts.append(f'conflicts with "{manager}" using {version}:\n{listing}')
        text = f"Apply failed with {count} conflicts: " + "\n".join(parts)
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": p}
        for m, v, p in conflicts
    ]
    body = statuses.status(
        409,
        "Conflict",
        text,
        {
            "name": name,
            **({"group": kind.group} if kind.group else {}),
            "kind": kind.resource,
            "causes": causes,
        },
    )
    return statuses.ApiError(body)
