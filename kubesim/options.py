"""Query options of each verb, validated as ``pkg/apis/meta/v1/validation`` does.

``CreateOptions``/``UpdateOptions``/``PatchOptions`` (``dryRun``, ``fieldManager``,
``fieldValidation``, ``force``), ``DeleteOptions`` (from the body when there is one -
the handler then ignores the query, as ``handlers/delete.go`` does - else from the
query) and ``ListOptions`` (``limit``, ``continue``, ``resourceVersion``,
``resourceVersionMatch``, ``sendInitialEvents``, ``timeoutSeconds``). A bad value
is a 422 naming the options kind (``CreateOptions.meta.k8s.io "" is invalid: ...``)
or a 400 for a value that does not parse, never a 500.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubesim import statuses
from kubesim.statuses import FORBIDDEN_FIELD, INVALID, REQUIRED, TOO_LONG, FieldError

JSON = dict[str, Any]
_FIELD_VALIDATION = ("", "Ignore", "Strict", "Warn")
_POLICIES = ("Foreground", "Background", "Orphan")


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = ""
    force: bool = False


def _meta_invalid(kind: str, errors: list[FieldError]) -> statuses.ApiError:
    return statuses.invalid(kind, "meta.k8s.io", "", errors)


def _dry_run_errors(values: Sequence[str]) -> list[FieldError]:
    if all(v == "All" for v in values):
        return []
    return [statuses.not_supported("dryRun", list(values), ["All"])]


def _field_manager_errors(manager: str) -> list[FieldError]:
    errors = []
    if len(manager) > 128:
        errors.append(FieldError(TOO_LONG, "fieldManager", detail="may not be more than 128 bytes"))
    for index, char in enumerate(manager):
        if not char.isprintable() or unicodedata.category(char) in ("Cc", "Cf"):
            errors.append(
                FieldError(
                    INVALID,
                    "fieldManager",
                    manager,
                    f"invalid character U+{ord(char):04X} (at position {index})",
                )
            )
    return errors


def write_options(
    verb: str, query: Mapping[str, str], query_all: Mapping[str, list[str]], patch_type: str = ""
) -> WriteOptions:
    """Validate create/update/patch options; raises the 422 the apiserver answers."""
    dry_run = query_all.get("dryRun", [])
    manager = query.get("fieldManager", "")
    validation = query.get("fieldValidation", "")
    force_text = query.get("force")
    errors: list[FieldError] = []
    kind = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}[verb]
    apply = patch_type == "application/apply-patch+yaml"
    if verb == "patch":
        if apply and not manager:
            errors.append(
                FieldError(REQUIRED, "fieldManager", detail="is required for apply patch")
            )
        if not apply and force_text is not None:
            errors.append(
                FieldError(
                    FORBIDDEN_FIELD, "force", detail="may not be specified for non-apply patch"
                )
            )
    errors += _field_manager_errors(manager)
    errors += _dry_run_errors(dry_run)
    if validation not in _FIELD_VALIDATION:
        errors.append(statuses.not_supported("fieldValidation", validation, _FIELD_VALIDATION))
    if errors:
        raise _meta_invalid(kind, errors)
    force = False
    if force_text is not None:
        force = _parse_bool("force", force_text)
    return WriteOptions(bool(dry_run), manager, validation, force)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false", ""):
        return False
    raise statuses.bad_request(f'strconv.ParseBool: parsing "{text}": invalid syntax')


@dataclass(frozen=True)
class DeleteOptions:
    dry_run: bool = False
    propagation: str = ""
    grace_seconds: int | None = None
    preconditions: JSON = field(default_factory=dict)
    from_body: bool = False


def delete_options(
    body: JSON | None, query: Mapping[str, str], query_all: Mapping[str, list[str]]
) -> DeleteOptions:
    """``DeleteOptions`` from the body if there is one, else from the query."""
    if body:
        if body.get("kind") not in (None, "", "DeleteOptions"):
            raise statuses.bad_request("decoded object cannot be converted to DeleteOptions")
        dry_run = body.get("dryRun") or []
        if not isinstance(dry_run, list):
            raise statuses.bad_request(
                "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of "
                "type []string"
            )
        policy = body.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        grace = body.get("gracePeriodSeconds")
        preconditions = body.get("preconditions") or {}
    else:
        dry_run = query_all.get("dryRun", [])
        policy = query.get("propagationPolicy")
        orphan_text = query.get("orphanDependents")
        orphan = None if orphan_text is None else _parse_bool("orphanDependents", orphan_text)
        grace_text = query.get("gracePeriodSeconds")
        grace = None
        if grace_text is not None:
            grace = _parse_int("gracePeriodSeconds", grace_text)
        preconditions = {}
        for name in ("uid", "resourceVersion"):
            value = query.get(f"preconditions.{name}") or query.get(f"preconditions[{name}]")
            if value:
                preconditions[name] = value
    errors: list[FieldError] = []
    if orphan is not None and policy is not None:
        errors.append(
            FieldError(
                INVALID,
                "propagationPolicy",
                policy,
                "orphanDependents and deletionPropagation cannot be both set",
            )
        )
    if policy is not None and policy not in _POLICIES:
        errors.append(statuses.not_supported("propagationPolicy", policy, [*_POLICIES, "nil"]))
    errors += _dry_run_errors(dry_run)
    if errors:
        raise _meta_invalid("DeleteOptions", errors)
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    return DeleteOptions(
        bool(dry_run),
        policy or "",
        None if grace is None else int(grace),
        preconditions,
        bool(body),
    )


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise statuses.bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


@dataclass(frozen=True)
class ListOptions:
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    match: str = ""
    send_initial_events: bool | None = None
    timeout: float | None = None
    bookmarks: bool = False
    watch: bool = False


def list_options(query: Mapping[str, str], *, watch: bool) -> ListOptions:  # noqa: PLR0912 - one pass of a controller or handler
    """Parse and validate ``ListOptions`` (``internalversion/validation``)."""
    limit = 0
    if query.get("limit"):
        limit = _parse_int("limit", query["limit"])
    timeout = None
    if query.get("timeoutSeconds"):
        timeout = float(_parse_int("timeoutSeconds", query["timeoutSeconds"]))
    send_initial = None
    if query.get("sendInitialEvents") is not None:
        send_initial = _parse_bool("sendInitialEvents", query["sendInitialEvents"])
    bookmarks = _parse_bool("allowWatchBookmarks", query.get("allowWatchBookmarks", "false"))
    rv = query.get("resourceVersion", "")
    match = query.get("resourceVersionMatch", "")
    has_continue = bool(query.get("continue"))
    errors: list[FieldError] = []
    if watch:
        if send_initial is not None and match != "NotOlderThan":
            errors.append(
                FieldError(
                    FORBIDDEN_FIELD,
                    "resourceVersionMatch",
                    detail=(
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                    ),
                )
            )
        if match:
            if send_initial is None:
                errors.append(
                    FieldError(
                        FORBIDDEN_FIELD,
                        "resourceVersionMatch",
                        detail=(
                            "resourceVersionMatch is forbidden for watch unless "
                            "sendInitialEvents is provided"
                        ),
                    )
                )
            if match != "NotOlderThan":
                errors.append(
                    statuses.not_supported("resourceVersionMatch", match, ["NotOlderThan"])
                )
            if has_continue:
                errors.append(
                    FieldError(
                        FORBIDDEN_FIELD,
                        "resourceVersionMatch",
                        detail=("resourceVersionMatch is forbidden when continue is provided"),
                    )
                )
    else:
        if match:
            if not rv:
                errors.append(
                    FieldError(
                        FORBIDDEN_FIELD,
                        "resourceVersionMatch",
                        detail=(
                            "resourceVersionMatch is forbidden unless resourceVersion is provided"
                        ),
                    )
                )
            if has_continue:
                errors.append(
                    FieldError(
                        FORBIDDEN_FIELD,
                        "resourceVersionMatch",
                        detail=("resourceVersionMatch is forbidden when continue is provided"),
                    )
                )
            if match not in ("Exact", "NotOlderThan"):
                errors.append(
                    statuses.not_supported(
                        "resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]
                    )
                )
            if match == "Exact" and rv == "0":
                errors.append(
                    FieldError(
                        FORBIDDEN_FIELD,
                        "resourceVersionMatch",
                        detail=(
                            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
                        ),
                    )
                )
        if send_initial is not None:
            errors.append(
                FieldError(
                    FORBIDDEN_FIELD,
                    "sendInitialEvents",
                    detail="sendInitialEvents is forbidden for list",
                )
            )
    if errors:
        raise _meta_invalid("ListOptions", errors)
    if rv and rv != "0":
        try:
            int(rv)
        except ValueError:
            raise statuses.bad_request(
                f'invalid resource version "{rv}": strconv.ParseUint: parsing "{rv}": '
                "invalid syntax"
            ) from None
    return ListOptions(
        limit, query.get("continue", ""), rv, match, send_initial, timeout, bookmarks, watch
    )
