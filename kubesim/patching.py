"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge.

Strategic merge patch follows ``k8s.io/apimachinery/pkg/util/strategicpatch``: maps
merge recursively and ``null`` deletes; lists whose schema says
``x-kubernetes-patch-strategy: merge`` merge by their ``patchMergeKey`` (or, for
primitives, as a union); other lists are replaced; ``$patch: delete`` removes a
list element or a map, ``$patch: replace`` replaces instead of merging, and
``$deleteFromPrimitiveList/<field>`` removes values. A patch that cannot be
applied is a 422 (JSON patch test/path failures) or 400 (a malformed document),
with the wording of ``handlers/patch.go``.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim import openapischema as oas
from kubesim import statuses
from kubesim.kinds import Kind

JSON = dict[str, Any]


def apply_patch(obj: JSON, patch: Any, patch_type: str, kind: Kind) -> JSON:
    if patch_type == "application/json-patch+json":
        if not isinstance(patch, list):
            raise statuses.bad_request(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            )
        return json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise statuses.bad_request(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    if patch_type == "application/merge-patch+json":
        result = merge_patch(obj, patch)
        assert isinstance(result, dict)
        return result
    merged: JSON = strategic_merge(obj, patch, oas.root(kind.definition))
    return merged


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise statuses.invalid_patch(f"path {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], op: str, path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise statuses.invalid_patch(
                f'doc is missing path: "{path}": missing value'
                if op != "add"
                else f'add operation does not apply: doc is missing path: "{path}": missing value'
            )
    return node, parts[-1]


def json_patch(doc: JSON, operations: list[Any]) -> JSON:  # noqa: PLR0912 - one pass of a controller or handler
    result: Any = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise statuses.bad_request("Operation missing op")
        op, path = operation["op"], str(operation.get("path", ""))
        parts = _pointer(path)
        if op in ("move", "copy"):
            source_parts = _pointer(str(operation.get("from", "")))
            holder, key = _parent(result, source_parts, op, str(operation.get("from")))
            value = _get(holder, key, str(operation.get("from")))
            if op == "move":
                _remove(holder, key, path)
            result = _add(result, parts, copy.deepcopy(value), path)
            continue
        if op == "add":
            result = _add(result, parts, copy.deepcopy(operation.get("value")), path)
        elif op == "remove":
            holder, key = _parent(result, parts, op, path)
            _remove(holder, key, path)
        elif op == "replace":
            if not parts:
                result = copy.deepcopy(operation.get("value"))
                continue
            holder, key = _parent(result, parts, op, path)
            _get(holder, key, path)
            if isinstance(holder, list):
                holder[int(key)] = copy.deepcopy(operation.get("value"))
            else:
                holder[key] = copy.deepcopy(operation.get("value"))
        elif op == "test":
            holder, key = (None, "") if not parts else _parent(result, parts, op, path)
            value = result if not parts else _get(holder, key, path)
            if value != operation.get("value"):
                raise statuses.invalid_patch(f"testing value {path} failed: test failed")
        else:
            raise statuses.bad_request(f"Unexpected kind: {op}")
    if not isinstance(result, dict):
        raise statuses.bad_request("the patch result is not an object")
    return result


def _get(holder: Any, key: str, path: str) -> Any:
    if isinstance(holder, dict) and key in holder:
        return holder[key]
    if isinstance(holder, list) and key.isdigit() and int(key) < len(holder):
        return holder[int(key)]
    raise statuses.invalid_patch(
        f"replace operation does not apply: doc is missing key: {path}: missing value"
    )


def _remove(holder: Any, key: str, path: str) -> None:
    if isinstance(holder, dict) and key in holder:
        del holder[key]
    elif isinstance(holder, list) and key.isdigit() and int(key) < len(holder):
        del holder[int(key)]
    else:
        raise statuses.invalid_patch(
            f'remove operation does not apply: doc is missing path: "{path}": missing value'
        )


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    holder, key = _parent(doc, parts, "add", path)
    if isinstance(holder, dict):
        holder[key] = value
    elif isinstance(holder, list):
        if key == "-":
            holder.append(value)
        elif key.isdigit() and int(key) <= len(holder):
            holder.insert(int(key), value)
        else:
            raise statuses.invalid_patch(
                f'add operation does not apply: doc is missing path: "{path}": missing value'
            )
    else:
        raise statuses.invalid_patch(
            f'add operation does not apply: doc is missing path: "{path}": missing value'
        )
    return doc


def strategic_merge(original: Any, patch: Any, schema: JSON) -> Any:  # noqa: PLR0912 - one pass of a controller or handler
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        field_schema = oas.child(schema, key)
        if value is None:
            result.pop(key, None)
            continue
        resolved = oas.resolve(field_schema)
        if isinstance(value, list):
            strategy, merge_key = oas.patch_strategy(field_schema)
            if "merge" in strategy.split(","):
                result[key] = _merge_list(
                    result.get(key) or [], value, merge_key, oas.child(resolved, "[]")
                )
            else:
                result[key] = [
                    v
                    for v in (
                        strategic_merge(None, item, oas.child(resolved, "[]"))
                        if isinstance(item, dict)
                        else copy.deepcopy(item)
                        for item in value
                    )
                    if v is not None
                ]
            continue
        if isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, resolved)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
            continue
        result[key] = value
    return result


def _merge_list(
    original: list[Any], patch: list[Any], merge_key: str, item_schema: JSON
) -> list[Any]:
    if not merge_key:
        out = list(original)
        for value in patch:
            if value not in out:
                out.append(value)
        return out
    out = [copy.deepcopy(o) for o in original]
    for item in patch:
        if not isinstance(item, dict):
            continue
        key_value = item.get(merge_key)
        index = next(
            (i for i, o in enumerate(out) if isinstance(o, dict) and o.get(merge_key) == key_value),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(strategic_merge(None, item, item_schema))
        else:
            out[index] = strategic_merge(out[index], item, item_schema)
    return out
