"""Every Kubernetes ``Status`` body kubesim sends is built here, and only here.

Clients (the ``kubernetes`` Python client, kubectl, eksops' error translation) key on
``code``, ``reason``, ``message`` and ``details``; a body that differs from the real
kube-apiserver's by one word changes what they do. The builders mirror the
constructors in apimachinery's ``pkg/api/errors/errors.go`` and the field-error
formatting of ``pkg/util/validation/field/errors.go``; the JSON key order is the one
the apiserver's serializer produces (``kind, apiVersion, metadata, status, message,
reason, details, code``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# field.ErrorType values: the string is both the cause ``type`` and, through
# _TYPE_TEXT, the words used in messages.
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN_FIELD = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"

_TYPE_TEXT = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    FORBIDDEN_FIELD: "Forbidden",
    TOO_LONG: "Too long",
}
# These types print no bad value (field.Error.ErrorBody).
_NO_VALUE = {REQUIRED, FORBIDDEN_FIELD, TOO_LONG}


@dataclass(frozen=True)
class FieldError:
    """One validation failure, as ``field.Error`` holds it."""

    type: str
    field: str
    bad_value: Any = None
    detail: str = ""

    def body(self) -> str:
        """The message without the field path (``ErrorBody``)."""
        text = _TYPE_TEXT[self.type]
        if self.type not in _NO_VALUE:
            text = f"{text}: {_go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def _go_value(value: Any) -> str:
    """Render a bad value the way Go's ``%q`` / ``%v`` does for the simple types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"))


def not_supported(field: str, value: Any, supported: Sequence[str]) -> FieldError:
    """``field.NotSupported``: the detail lists the quoted supported values."""
    quoted = ", ".join(json.dumps(v) for v in supported)
    return FieldError(NOT_SUPPORTED, field, value, f"supported values: {quoted}")


class ApiError(Exception):
    """Raised by handlers to answer with a Kubernetes Status body."""

    def __init__(self, status: JSON, headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.code = int(status["code"])
        self.headers = headers or {}


def _status(code: int, reason: str, message: str, details: JSON | None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(group: str = "", kind: str = "", name: str = "", **extra: Any) -> JSON:
    # StatusDetails fields are all omitempty, in this order.
    out: JSON = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    if kind:
        out["kind"] = kind
    for key in ("uid", "causes", "retryAfterSeconds"):
        if extra.get(key):
            out[key] = extra[key]
    return out


def qualified(resource: str, group: str) -> str:
    """``schema.GroupResource.String()``: ``jobs.batch``, ``namespaces``."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" not found'
    return ApiError(_status(404, "NotFound", message, _details(group, resource, name)))


def already_exists(resource: str, group: str, name: str, *, being_deleted: bool) -> ApiError:
    message = f'{qualified(resource, group)} "{name}" already exists'
    if being_deleted:
        # genericregistry.Store.Create prefixes this when the old object is terminating.
        message = f"object is being deleted: {message}"
    return ApiError(_status(409, "AlreadyExists", message, _details(group, resource, name)))


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}'
    return ApiError(_status(409, "Conflict", message, _details(group, resource, name)))


def forbidden(
    resource: str, group: str, name: str, why: str, causes: list[JSON] | None = None
) -> ApiError:
    if not resource:
        message = f"forbidden: {why}"
    elif not name:
        message = f"{qualified(resource, group)} is forbidden: {why}"
    else:
        message = f'{qualified(resource, group)} "{name}" is forbidden: {why}'
    details = _details(group, resource, name, causes=causes)
    return ApiError(_status(403, "Forbidden", message, details))


def invalid(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    qualified_kind = f"{kind}.{group}" if group else kind
    message = f'{qualified_kind} "{name}" is invalid'
    if errors:
        message = f"{message}: {_aggregate([str(e) for e in errors])}"
    details = _details(group, kind, name, causes=causes)
    return ApiError(_status(422, "Invalid", message, details))


def _aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: de-duplicated, bracketed when several."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def bad_request(message: str) -> ApiError:
    return ApiError(_status(400, "BadRequest", message, None))


def unauthorized() -> ApiError:
    # The authentication filter answers every failure with this one body
    # (endpoints/handlers/responsewriters.Unauthorized... via NewUnauthorized("Unauthorized")).
    return ApiError(_status(401, "Unauthorized", "Unauthorized", None))


def path_not_found() -> ApiError:
    # The apiserver's NotFound handler for unknown paths: details is an empty object.
    message = "the server could not find the requested resource"
    return ApiError(_status(404, "NotFound", message, {}))


def method_not_supported(resource: str, group: str, action: str) -> ApiError:
    message = f'{action} is not supported on resources of kind "{qualified(resource, group)}"'
    return ApiError(_status(405, "MethodNotAllowed", message, _details(group, resource)))


def too_many_requests(retry_after: int, message: str = "") -> ApiError:
    text = message or "Too many requests, please try again later."
    details = _details(retryAfterSeconds=retry_after)
    return ApiError(
        _status(429, "TooManyRequests", text, details),
        headers={"Retry-After": str(retry_after)},
    )


def internal_error(cause: str) -> ApiError:
    details = _details(causes=[{"message": cause}])
    return ApiError(_status(500, "InternalError", f"Internal error occurred: {cause}", details))


def service_unavailable(message: str) -> ApiError:
    return ApiError(_status(503, "ServiceUnavailable", message, None))


def gateway_timeout(message: str, retry_after: int = 0) -> ApiError:
    details = _details(retryAfterSeconds=retry_after)
    return ApiError(_status(504, "Timeout", f"Timeout: {message}", details))


def bad_gateway(message: str) -> ApiError:
    # kube-apiserver never emits 502 itself (a load balancer in front of it does);
    # apimachinery's client maps unknown 5xx to reason InternalError, so we send that.
    return ApiError(_status(502, "InternalError", message, None))


def success(resource: str, group: str, name: str, uid: str) -> JSON:
    """The Status a store returns after deleting an object at once."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": _details(group, resource, name, uid=uid),
    }


status = _status
"""Public name of the Status builder for modules with their own reasons."""


def expired(message: str, continue_token: str = "") -> ApiError:
    """410 Gone ``Expired`` (``errors.NewResourceExpired``)."""
    body = _status(410, "Expired", message, None)
    if continue_token:
        body["metadata"] = {"continue": continue_token}
    return ApiError(body)


def resource_version_too_large(requested: int, current: int) -> ApiError:
    """``storage.NewTooLargeResourceVersionError``: 504 Timeout with its cause."""
    message = f"Too large resource version: {requested}, current: {current}"
    details = {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }
    return ApiError(_status(504, "Timeout", f"Timeout: {message}", details))


def conflict_modified(resource: str, group: str, name: str) -> ApiError:
    """The optimistic-concurrency 409 of ``storage.NewResourceVersionConflictsError``."""
    return conflict(
        resource,
        group,
        name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def invalid_patch(message: str) -> ApiError:
    """A patch that cannot be applied (``handlers/patch.go``: 422 from the patcher)."""
    return ApiError(_status(422, "Invalid", message, {}))
