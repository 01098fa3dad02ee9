"""``/openapi/v2`` and ``/openapi/v3``: the served types' schemas for clients.

kubectl reads OpenAPI v3 (``/openapi/v3`` lists one document per group-version,
each at ``serverRelativeURL`` with a ``hash``) for ``explain``, for client-side
validation and to find whether the server validates fields itself
(``fieldValidation`` among a PATCH operation's parameters, which makes
``--validate=strict`` send ``fieldValidation=Strict``). The schemas come from the
1.31 definitions shipped by kubernetes-validate, turned back into OpenAPI: refs to
``#/definitions`` (v2) or ``#/components/schemas`` (v3, wrapped in ``allOf`` when a
description sits beside them, as upstream's v3 builder does), nullable type lists
to single types, ``int-or-string`` and quantities to strings. Only the definitions
the served kinds reach are included. kubesim writes JSON only: a v2 request that
accepts nothing but the protobuf encoding gets 406.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson
from aiohttp import web

from kubesim import openapischema as oas
from kubesim.kinds import SERVED, Kind

JSON = dict[str, Any]
_EXTRA_ROOTS = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    "io.k8s.api.authentication.v1.SelfSubjectReview",
)
_REVIEW_GV = {
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview": ("authorization.k8s.io", "v1"),
    "io.k8s.api.authentication.v1.SelfSubjectReview": ("authentication.k8s.io", "v1"),
}
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


def _convert(node: Any, ref_prefix: str, v3: bool) -> Any:
    if isinstance(node, list):
        return [_convert(n, ref_prefix, v3) for n in node]
    if not isinstance(node, dict):
        return node
    out: JSON = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = ref_prefix + str(value).rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if kinds:
                out[key] = kinds[0]
        elif key == "oneOf":
            out["type"] = "string"
        elif (
            key in ("enum",)
            and node.get("type") in (["string", "null"], "string")
            and len(value) == 1
        ):
            continue
        elif key in ("properties", "definitions", "patternProperties"):
            out[key] = {k: _convert(v, ref_prefix, v3) for k, v in value.items()}
        else:
            out[key] = _convert(value, ref_prefix, v3)
    if v3 and "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(str(value).rsplit("/", 1)[-1])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(roots: list[str]) -> list[str]:
    defs = oas.definitions()
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(f for f in found if f not in seen and f in defs)
    return sorted(seen)


def _schemas(names: list[str], ref_prefix: str, v3: bool) -> JSON:
    defs = oas.definitions()
    out: JSON = {}
    for name in names:
        converted = _convert(defs[name], ref_prefix, v3)
        if name in _SPECIAL:
            converted = {"description": converted.get("description", ""), **_SPECIAL[name]}
        out[name] = converted
    return out


def _roots(kinds: list[Kind]) -> list[str]:
    roots = []
    for kind in kinds:
        roots += [kind.definition, kind.definition + "List"]
    return roots


def _parameters(names: tuple[str, ...]) -> list[JSON]:
    return [{"name": n, "in": "query", "type": "string", "uniqueItems": True} for n in names]


def _paths(kinds: list[Kind], ref_prefix: str, v3: bool) -> JSON:
    paths: JSON = {}
    write = ("dryRun", "fieldManager", "fieldValidation")

    def params(names: tuple[str, ...]) -> list[JSON]:
        if v3:
            return [
                {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                for n in names
            ]
        return _parameters(names)

    def response(ref: str) -> JSON:
        if v3:
            return {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"$ref": ref_prefix + ref}}},
                }
            }
        return {"200": {"description": "OK", "schema": {"$ref": ref_prefix + ref}}}

    for kind in kinds:
        base = f"/api/{kind.version}" if not kind.group else f"/apis/{kind.group}/{kind.version}"
        collection = (
            f"{base}/namespaces/{{namespace}}/{kind.resource}"
            if kind.namespaced
            else f"{base}/{kind.resource}"
        )
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        operations = {
            "get": {
                "operationId": f"list{kind.kind}",
                "parameters": params(
                    (
                        "labelSelector",
                        "fieldSelector",
                        "limit",
                        "continue",
                        "resourceVersion",
                        "watch",
                    )
                ),
                "responses": response(kind.definition + "List"),
                "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": gvk,
            },
            "post": {
                "operationId": f"create{kind.kind}",
                "parameters": params(write),
                "responses": response(kind.definition),
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
        paths[collection] = operations
        paths[collection + "/{name}"] = {
            "get": {
                "operationId": f"read{kind.kind}",
                "responses": response(kind.definition),
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
            },
            "put": {
                "operationId": f"replace{kind.kind}",
                "parameters": params(write),
                "responses": response(kind.definition),
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": gvk,
            },
            "patch": {
                "operationId": f"patch{kind.kind}",
                "parameters": params((*write, "force")),
                "responses": response(kind.definition),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
            "delete": {
                "operationId": f"delete{kind.kind}",
                "parameters": params(("dryRun", "gracePeriodSeconds", "propagationPolicy")),
                "responses": response("io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
                "x-kubernetes-action": "delete",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
    return paths


def _version_text() -> str:
    return "v1.31.4"


@functools.cache
def v2_document() -> bytes:
    names = _closure(_roots(list(SERVED)) + list(_EXTRA_ROOTS))
    doc = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": _version_text()},
        "paths": _paths(list(SERVED), "#/definitions/", v3=False),
        "definitions": _schemas(names, "#/definitions/", v3=False),
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            }
        },
        "security": [{"BearerToken": []}],
    }
    return orjson.dumps(doc)


def _group_versions() -> dict[str, list[Kind]]:
    out: dict[str, list[Kind]] = {}
    for kind in SERVED:
        key = f"api/{kind.version}" if not kind.group else f"apis/{kind.group}/{kind.version}"
        out.setdefault(key, []).append(kind)
    out.setdefault("apis/authorization.k8s.io/v1", [])
    out.setdefault("apis/authentication.k8s.io/v1", [])
    return out


@functools.cache
def v3_document(group_version: str) -> bytes:
    kinds = _group_versions().get(group_version)
    if kinds is None:
        return b""
    roots = [
        *_roots(kinds),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ]
    for definition, (group, version) in _REVIEW_GV.items():
        if group_version == f"apis/{group}/{version}":
            roots.append(definition)
    names = _closure(roots)
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": _version_text()},
        "paths": _paths(kinds, "#/components/schemas/", v3=True),
        "components": {
            "schemas": _schemas(names, "#/components/schemas/", v3=True),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
    }
    return orjson.dumps(doc)


def _hash(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()[:128].upper()


def v3_index() -> bytes:
    paths = {}
    for group_version in _group_versions():
        paths[group_version] = {
            "serverRelativeURL": (
                f"/openapi/v3/{group_version}?hash={_hash(v3_document(group_version))}"
            )
        }
    return orjson.dumps({"paths": paths})


def serve(request: web.Request, path: str) -> web.Response:
    from kubesim import negotiation, statuses  # noqa: PLC0415

    accept = request.headers.get("Accept", "")
    if accept and "json" not in accept and "*/*" not in accept:
        raise negotiation.not_acceptable(("application/json",))
    if path == "/openapi/v2":
        body = v2_document()
    elif path == "/openapi/v3":
        body = v3_index()
    else:
        body = v3_document(path[len("/openapi/v3/") :])
        if not body:
            raise statuses.path_not_found()
    response = web.Response(body=body, content_type="application/json")
    response.headers["Cache-Control"] = (
        "public, immutable" if request.query.get("hash") else "no-cache, private"
    )
    response.headers["Etag"] = f'"{_hash(body)}"'
    return response
