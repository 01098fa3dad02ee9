"""Decoding a request body the way the apiserver's strict JSON decoder sees it.

The OpenAPI schemas shipped by kubernetes-validate (strict variant) tell which
fields exist and of what type. The apiserver reports problems of these kinds
*while decoding*, before validation, so the answers differ from 422s:

* wrong JSON type -> 400 ``Job in version "v1" cannot be handled as a Job: json:
  cannot unmarshal ...`` (``handlers/create.go`` + ``sigs.k8s.io/json``);
* unknown field -> dropped with a ``Warning`` header by default, 400
  ``strict decoding error: unknown field "..."`` with ``fieldValidation=Strict``
  (``handlers/fieldmanager`` / KEP-2885 server-side field validation);
* missing required properties -> left to ``validation`` as ``Required value``.

Validators are built once per kind (kubernetes-validate's own ``validate()`` would
re-read the 1.3 MB definitions file on every call). A body is first checked with
``jsonschema-rs`` (compiled, ~100x faster): a valid body, the common case, costs a
few microseconds, and only an invalid one goes through the pure-Python validator,
whose error objects (validator keyword, path, sub-schema) the answers are built from.
That keeps kubesim from being the bottleneck of a benchmark of thousands of creates.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extras
import jsonschema_rs
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from kubesim import statuses

JSON = dict[str, Any]
SCHEMA_VERSION = "1.31.0"
_GO_TYPES = {"int32": "int32", "int64": "int64", "integer": "int64", "boolean": "bool"}


@dataclass
class DecodeResult:
    """Unknown-field warnings and required-field errors found while decoding."""

    warnings: list[str] = field(default_factory=list)
    required: list[statuses.FieldError] = field(default_factory=list)


@functools.cache
def _definitions() -> JSON:
    result: JSON = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict/_definitions.json", SCHEMA_VERSION
    )
    return result


@functools.cache
def _validator(filename: str) -> jsonschema.protocols.Validator:
    schema = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict/{filename}", SCHEMA_VERSION
    )
    registry: Registry[Any] = Resource.from_contents(_definitions()) @ (
        Resource.from_contents(schema) @ Registry()
    )
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.cache
def _fast_validator(filename: str) -> Any:
    """The same schema compiled by jsonschema-rs; only says valid or not."""
    schema = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict/{filename}", SCHEMA_VERSION
    )
    definitions = _definitions()
    registry = jsonschema_rs.Registry([(definitions["$id"], definitions), (schema["$id"], schema)])
    return jsonschema_rs.validator_for(schema, registry=registry)


def _path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(schema: JSON) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "object")
    fmt = schema.get("format", "")
    if kind == "integer":
        return _GO_TYPES.get(fmt, "int64")
    if kind == "array":
        return "[]" + _go_type(schema.get("items", {}))
    return _GO_TYPES.get(str(kind), str(kind) if kind != "object" else "struct")


def _struct_name(root: JSON, where: list[str | int]) -> str:
    """Innermost Go struct enclosing the bad field: the last ``$ref`` on the way there."""
    defs = _definitions()["$defs"]
    name, node = "", root
    for step in where[:-1]:
        ref = node.get("$ref", "")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            node = defs.get(name, {})
        node = (
            node.get("items", {})
            if isinstance(step, int)
            else node.get("properties", {}).get(step, {})
        )
    ref = node.get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1] if name else "Object"


def decode(body: JSON, *, filename: str, kind: str, version: str, strict: bool) -> DecodeResult:
    """Check ``body`` against the schema, dropping unknown fields in place unless strict."""
    result = DecodeResult()
    if _fast_validator(filename).is_valid(body):
        return result
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}'
    unknown: list[tuple[JSON, str, str]] = []
    for error in _validator(filename).iter_errors(body):
        where = list(error.absolute_path)
        if error.validator == "type":
            go_field = ".".join(str(p) for p in where if not isinstance(p, int))
            struct = _struct_name(_validator(filename).schema, where)
            message = (
                f"json: cannot unmarshal {_json_type(error.instance)} into Go struct field "
                f"{struct}.{go_field} of type {_go_type(error.schema)}"
            )
            raise statuses.bad_request(f"{prefix}: {message}")
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                unknown.append((error.instance, key, _path([*where, key])))
        elif error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    where_text = _path([*where, key])
                    result.required.append(statuses.FieldError(statuses.REQUIRED, where_text))
    if unknown and strict:
        listing = ", ".join(f"unknown field {json.dumps(path)}" for _, _, path in unknown)
        raise statuses.bad_request(f"{prefix}: strict decoding error: {listing}")
    for container, key, path in unknown:
        container.pop(key, None)
        result.warnings.append(f"unknown field {json.dumps(path)}")
    return result
