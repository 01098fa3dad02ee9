"""Decode the Kubernetes protobuf encoding that kubectl 1.32+ sends for built-in types.

client-go's typed clients (``kubectl create namespace``, ``create job``, ``auth
can-i``...) send ``Content-Type: application/vnd.kubernetes.protobuf`` bodies and
do not fall back to JSON on a 415, so kubesim has to read them. No maintained
Python package carries the Kubernetes message definitions, so kubesim decodes the
wire format itself with a table of field numbers generated from upstream's
``generated.proto`` (``kubesim/protoschema.py``, see ``kubesim.protogen``).

The body is the envelope of ``k8s.io/apimachinery/pkg/runtime/serializer/protobuf``:
the magic ``k8s\\x00`` then a ``runtime.Unknown`` (``typeMeta`` apiVersion/kind,
``raw`` message bytes). The result is the object as JSON would have carried it:
``metav1.Time`` as RFC 3339, ``Quantity`` and ``IntOrString`` as their JSON forms,
``RawExtension``/``FieldsV1`` as embedded JSON, and Go zero values of non-pointer
fields omitted (what ``omitempty`` does when Go encodes JSON).
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any

from kubesim.protoschema import MESSAGES

JSON = dict[str, Any]
MAGIC = b"k8s\x00"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_TYPES = {
    ("v1", "Namespace"): "k8s.io.api.core.v1.Namespace",
    ("v1", "Pod"): "k8s.io.api.core.v1.Pod",
    ("v1", "Event"): "k8s.io.api.core.v1.Event",
    ("batch/v1", "Job"): "k8s.io.api.batch.v1.Job",
    ("events.k8s.io/v1", "Event"): "k8s.io.api.events.v1.Event",
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
    ): "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
    ): "k8s.io.api.authentication.v1.SelfSubjectReview",
    ("v1", "DeleteOptions"): META + "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): META + "DeleteOptions",
}
_INTS = {"int32", "int64", "uint32", "uint64"}


class ProtobufError(Exception):
    """The body is not a protobuf kubesim can read (a 400, like a decode error)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("unexpected EOF")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtobufError("proto: integer overflow")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    value: Any
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("unexpected EOF")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"proto: illegal wireType {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = (value + (1 << 31)) % (1 << 32) - (1 << 31)
    return value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode("utf-8", errors="replace")
    if kind == "bytes":
        import base64  # noqa: PLC0415

        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "sint32"):
        return _signed(int(value), 32)
    if kind in ("int64", "sint64"):
        return _signed(int(value), 64)
    if kind in ("uint32", "uint64"):
        return int(value)
    if kind == "double":
        return struct.unpack("<d", value)[0] if wire == 1 else float(value)
    if kind == "float":
        return struct.unpack("<f", value)[0] if wire == 5 else float(value)
    return value


def _time(data: bytes, micro: bool) -> str:
    seconds = nanos = 0
    for number, _wire, value in _fields(data):
        if number == 1:
            seconds = _signed(value, 64)
        elif number == 2:
            nanos = _signed(value, 32)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if micro:
        return f"{whole}.{nanos // 1000:06d}Z"
    return whole + "Z"


def _duration(nanos: int) -> str:
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = rest / 1e9
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
    text += f"{seconds:g}s"
    return sign + text


def _special(name: str, data: bytes) -> tuple[bool, Any]:
    if name in (META + "Time", META + "MicroTime"):
        return True, _time(data, micro=name.endswith("MicroTime"))
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        fields = _fields(data)
        return True, next((bytes(v).decode() for n, _, v in fields if n == 1), "0")
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        kind, int_val, str_val = 0, 0, ""
        for number, _wire, value in _fields(data):
            if number == 1:
                kind = int(value)
            elif number == 2:
                int_val = _signed(value, 32)
            elif number == 3:
                str_val = bytes(value).decode()
        return True, str_val if kind == 1 else int_val
    if name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", META + "FieldsV1"):
        raw = next((bytes(v) for n, _, v in _fields(data) if n == 1), b"")
        try:
            return True, json.loads(raw) if raw else None
        except ValueError:
            return True, None
    if name == META + "Duration":
        nanos = next((_signed(v, 64) for n, _, v in _fields(data) if n == 1), 0)
        return True, _duration(nanos)
    return False, None


def _message(name: str, data: bytes) -> Any:
    handled, value = _special(name, data)
    if handled:
        return value
    schema = MESSAGES.get(name)
    if schema is None:
        raise ProtobufError(f"kubesim cannot decode protobuf message {name}")
    out: JSON = {}
    for number, wire, raw in _fields(data):
        field = schema.get(number)
        if field is None:
            continue
        json_name, label, kind = field[0], field[1], field[2]
        if label == "map":
            entry = {n: v for n, _, v in _fields(bytes(raw))}
            key = bytes(entry.get(1, b"")).decode()
            value = entry.get(2, b"")
            out.setdefault(json_name, {})[key] = (
                bytes(value).decode() if kind == "string" else _message(kind, bytes(value))
            )
            continue
        if kind in MESSAGES or kind.startswith("k8s.io."):
            decoded = _message(kind, bytes(raw))
        elif wire == 2 and kind not in ("string", "bytes") and label == "repeated":
            packed = []
            pos = 0
            blob = bytes(raw)
            while pos < len(blob):
                item, pos = _varint(blob, pos)
                packed.append(_scalar(kind, 0, item))
            out.setdefault(json_name, []).extend(packed)
            continue
        else:
            decoded = _scalar(kind, wire, raw)
        if label == "repeated":
            out.setdefault(json_name, []).append(decoded)
        else:
            out[json_name] = decoded
    return _drop_zeroes(name, out)


def _drop_zeroes(name: str, out: JSON) -> JSON:
    schema = MESSAGES.get(name, {})
    pointers = {f[0] for f in schema.values() if len(f) > 3 and f[3] == "ptr"}
    kinds = {f[0]: f[2] for f in schema.values()}
    for key in list(out):
        value = out[key]
        if key in pointers:
            continue
        kind = kinds.get(key, "")
        if (
            value in ("", 0, False, None)
            and (kind in _INTS or kind in ("string", "bool", "double", "float") or value is None)
        ) or (
            isinstance(value, list | dict)
            and not value
            and (kind in _INTS or kind == "string" or isinstance(value, list))
        ):
            del out[key]
    return out


def decode(body: bytes) -> JSON:
    """The object of a ``application/vnd.kubernetes.protobuf`` request body."""
    if not body.startswith(MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    api_version = kind = ""
    raw = b""
    for number, _wire, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, _w, text in _fields(bytes(value)):
                if inner == 1:
                    api_version = bytes(text).decode()
                elif inner == 2:
                    kind = bytes(text).decode()
        elif number == 2:
            raw = bytes(value)
    message = _TYPES.get((api_version, kind))
    if message is None:
        raise ProtobufError(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme "kubesim"'
        )
    obj = _message(message, raw)
    return {"kind": kind, "apiVersion": api_version, **obj}
