"""Content negotiation: which body encodings kubesim reads and which answers it writes.

Request bodies (``Content-Type``) may be JSON (the default when the header is
absent, as ``NegotiateInputSerializerForMediaType`` picks the first supported type),
YAML, or the Kubernetes protobuf envelope that kubectl 1.32+ and client-go typed
clients send (``k8s\\x00`` + ``runtime.Unknown``, decoded by ``kubesim.protobuf``);
anything else is 415 with the upstream text (``handlers/negotiation/errors.go``).

Answers follow ``Accept``: JSON (also for ``*/*`` and no header), YAML, a
``meta.k8s.io`` ``Table`` (``as=Table;g=meta.k8s.io;v=v1|v1beta1``), or
``PartialObjectMetadata``/``PartialObjectMetadataList``; a request that accepts
none of these (protobuf only, say) is 406 with the upstream text. kubesim never
writes protobuf, which every client tolerates because it always offers JSON too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from kubesim import statuses

JSON = dict[str, Any]
PROTOBUF = "application/vnd.kubernetes.protobuf"
INPUT_TYPES = ("application/json", "application/yaml", PROTOBUF)
OUTPUT_TYPES = ("application/json", "application/yaml")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclass(frozen=True)
class Output:
    """How to write an answer: ``json``/``yaml`` and an optional transform."""

    encoding: str = "json"
    transform: str = ""
    """``Table``, ``PartialObjectMetadata`` or ``PartialObjectMetadataList`` (or empty)."""
    table_version: str = "v1"
    include_object: str = "Metadata"
    pretty: bool = False


def media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``type/subtype`` lower-cased and its parameters."""
    if not header:
        return "", {}
    parts = [p.strip() for p in header.split(";")]
    params = {}
    for part in parts[1:]:
        if "=" in part:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def unsupported_media_type(accepted: tuple[str, ...] = INPUT_TYPES) -> statuses.ApiError:
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    return statuses.ApiError(statuses.status(415, "UnsupportedMediaType", message, None))


def not_acceptable(accepted: tuple[str, ...] = OUTPUT_TYPES) -> statuses.ApiError:
    message = "only the following media types are accepted: " + ", ".join(accepted)
    return statuses.ApiError(statuses.status(406, "NotAcceptable", message, None))


def decode_body(raw: bytes, content_type: str | None, *, kind: str = "") -> Any:
    """The request body as JSON-like data, by its ``Content-Type``."""
    mtype, _ = media_type(content_type)
    if not mtype or mtype in {"application/json", "*/*"}:
        return _json(raw)
    if mtype in ("application/yaml", "application/apply-patch+yaml"):
        return _yaml(raw)
    if mtype == PROTOBUF:
        from kubesim import protobuf  # noqa: PLC0415 - only kubectl 1.32+ bodies need it

        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise statuses.bad_request(str(exc)) from exc
    if mtype in (
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ):
        return _json(raw)
    del kind
    raise unsupported_media_type()


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = _json_error(raw, exc)
        raise statuses.bad_request(
            f"couldn't get version/kind; json parse error: {message}"
        ) from exc


def _json_error(raw: bytes, exc: Exception) -> str:
    # Go's encoding/json wording for the two common cases; never Python's text.
    try:
        json.loads(raw)
    except json.JSONDecodeError as error:
        if error.pos >= len(raw.strip()):
            return "unexpected end of JSON input"
        char = raw[error.pos : error.pos + 1].decode("latin-1")
        return f"invalid character '{char}' looking for beginning of value"
    except UnicodeDecodeError:
        return "invalid character looking for beginning of value"
    del exc
    return "invalid JSON"


def _yaml(raw: bytes) -> Any:
    try:
        return yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = f"line {mark.line + 1}: "
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise statuses.bad_request(f"error converting YAML to JSON: yaml: {line}{problem}") from exc


def choose_output(accept: str | None, query_pretty: str | None = None) -> Output:
    """Pick the answer's encoding from ``Accept`` (first acceptable alternative wins)."""
    pretty = query_pretty in ("true", "1")
    if not accept:
        return Output(pretty=pretty)
    for alternative in accept.split(","):
        mtype, params = media_type(alternative)
        if mtype in ("*/*", "application/*", "application/json", "application/yaml"):
            encoding = "yaml" if mtype == "application/yaml" else "json"
            transform = params.get("as", "")
            if not transform:
                return Output(encoding, pretty=pretty)
            group, version = params.get("g", ""), params.get("v", "")
            if transform in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList") and (
                group == "meta.k8s.io" and version in ("v1", "v1beta1")
            ):
                return Output(encoding, transform, version, pretty=pretty)
    raise not_acceptable()


def encode(body: Any, output: Output) -> tuple[bytes, str]:
    if output.encoding == "yaml":
        return yaml.safe_dump(
            body, sort_keys=False, allow_unicode=True
        ).encode(), "application/yaml"
    if output.pretty:
        return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n", "application/json"
    return orjson.dumps(body), "application/json"
