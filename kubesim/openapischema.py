"""The served types' OpenAPI schemas, and walking them by field path.

The schemas are the Kubernetes 1.31 definitions shipped by ``kubernetes-validate``
(generated from upstream's ``api/openapi-spec``), which keep the ``x-kubernetes-*``
extensions: ``x-kubernetes-patch-strategy``/``-patch-merge-key`` (strategic merge
patch), ``x-kubernetes-list-type``/``-list-map-keys`` (server-side apply) and
``x-kubernetes-group-version-kind``. ``node_at`` follows ``$ref``s to the schema of
a field, ``list_keys`` says how a list is merged.
"""

from __future__ import annotations

import functools
from typing import Any

from kubernetes_validate import utils as kv_utils

JSON = dict[str, Any]
SCHEMA_VERSION = "1.31.0"


@functools.cache
def definitions() -> dict[str, JSON]:
    data: JSON = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local/_definitions.json", SCHEMA_VERSION
    )
    defs: dict[str, JSON] = data["$defs"]
    return defs


def resolve(node: JSON | None) -> JSON:
    seen = 0
    while node and "$ref" in node and seen < 20:
        node = definitions().get(node["$ref"].rsplit("/", 1)[-1], {})
        seen += 1
    return node or {}


def root(definition: str) -> JSON:
    return definitions().get(definition, {})


def child(node: JSON, key: str | int) -> JSON:
    """The schema of ``node``'s field ``key`` (or of its items for an index)."""
    node = resolve(node)
    if isinstance(key, int) or key == "[]":
        return resolve(node.get("items") or {})
    properties = node.get("properties")
    if properties and key in properties:
        found: JSON = properties[key]
        return found
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        return additional
    return {}


def list_keys(field_schema: JSON) -> tuple[str, list[str]]:
    """(strategy, keys) of a list field: ``map`` + keys, ``set``, or ``atomic``."""
    list_type = field_schema.get("x-kubernetes-list-type")
    keys = field_schema.get("x-kubernetes-list-map-keys") or []
    merge_key = field_schema.get("x-kubernetes-patch-merge-key")
    if list_type == "map" and keys:
        return "map", list(keys)
    if merge_key and field_schema.get("x-kubernetes-patch-strategy", "").startswith("merge"):
        return "map", [merge_key]
    if list_type == "set" or field_schema.get("x-kubernetes-patch-strategy") == "merge":
        return "set", []
    return "atomic", []


def patch_strategy(field_schema: JSON) -> tuple[str, str]:
    """(strategy, merge key) for strategic merge patch."""
    return (
        str(field_schema.get("x-kubernetes-patch-strategy") or ""),
        str(field_schema.get("x-kubernetes-patch-merge-key") or ""),
    )
