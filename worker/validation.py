"""One wording for every validation failure: a request, an HTTP parameter, a setting.

pydantic reports problems as a list of ``{loc, msg, type, input}``; callers read one
sentence naming each bad field. Requests and HTTP parameters name fields by their
dotted path (``job_manifest.spec.template``), settings by the environment variable an
operator sets (``K8S_RATE_LIMIT_QPS``), with the rejected value quoted unless the
variable holds a secret. Pure: producers, workers and the gateway all use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from worker.errors import ConfigurationInvalid

# Never echo what these variables were set to: keys, passwords, tokens.
_SECRET = re.compile(r"(?i)(key|password|secret|token|credential)")
Naming = Literal["field", "variable"]


def split_comma_list(value: object) -> object:
    """``"a, b,,c"`` → ``("a", "b", "c")``; other values pass through for pydantic to check."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


#: Annotate a ``tuple[...]`` setting with this (and ``NoDecode``) to read a comma list.
CommaList = BeforeValidator(split_comma_list)


def _message(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == "extra_forbidden":
        return "unknown field (not part of the contract)"
    if kind == "missing":
        return "required field is missing"
    return str(item.get("msg", "invalid")).removeprefix("Value error, ")


def _location(parts: Sequence[Any], naming: Naming) -> str:
    if naming == "variable":
        return "_".join(str(part) for part in parts).upper()
    return ".".join(str(part) for part in parts)


def describe(errors: Iterable[Mapping[str, Any]], *, naming: Naming = "field") -> str:
    """Return pydantic ``errors`` as ``location: problem; ...`` (one clause per error)."""
    problems = []
    for item in errors:
        location = _location(item.get("loc", ()), naming)
        message = _message(item)
        if naming == "variable" and location and not _SECRET.search(location):
            message = f"{message} (got {item.get('input')!r})"
        if location and not message.startswith(location):
            problems.append(f"{location}: {message}")
        else:
            problems.append(message)
    return "; ".join(problems)


def explain(error: ValidationError, *, what: str = "request") -> str:
    """Return a contract's validation failure as one sentence naming each bad field."""
    return f"Invalid {what}: " + describe(error.errors())


def explain_settings(error: ValidationError) -> str:
    """Return a settings failure as one line naming each environment variable to fix."""
    return describe(error.errors(), naming="variable")


M = TypeVar("M", bound=BaseModel)


def validate_settings(model: type[M], **values: Any) -> M:
    """Build settings ``model``; raise ConfigurationInvalid with one line if they are bad."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise ConfigurationInvalid(explain_settings(exc)) from None
