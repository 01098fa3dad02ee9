"""The generated protobuf field table: compact, what the generator writes, and readable."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from kubesim import protobuf, protogen, protoschema
from kubesim.prototable import parse, render


def test_the_checked_in_table_is_what_the_generator_writes() -> None:
    text = Path(protoschema.__file__).read_text(encoding="utf-8")
    assert protogen.module_source(protoschema.MESSAGES) == text
    assert parse(render(protoschema.MESSAGES)) == protoschema.MESSAGES
    # one line per message (and per package), not a pretty-printed literal
    assert len(text.splitlines()) < len(protoschema.MESSAGES) + 60
    assert protoschema.MESSAGES["k8s.io.api.batch.v1.Job"][2] == [
        "spec",
        "optional",
        "k8s.io.api.batch.v1.JobSpec",
    ]


def test_the_generator_reads_proto_files_and_go_pointers(tmp_path: Path) -> None:
    api, machinery = tmp_path / "api", tmp_path / "apimachinery"
    core = api / "core" / "v1"
    meta = machinery / "pkg" / "apis" / "meta" / "v1"
    core.mkdir(parents=True)
    meta.mkdir(parents=True)
    (core / "generated.proto").write_text(
        "package k8s.io.api.core.v1;\n"
        "message Namespace {\n"
        "  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;\n"
        "  optional NamespaceSpec spec = 2;\n"
        "}\n"
        "message NamespaceSpec {\n"
        "  // a comment\n"
        "  repeated string finalizers = 1;\n"
        "  map<string, string> extra = 2;\n"
        "  optional int64 grace = 3;\n"
        "}\n"
    )
    (core / "types.go").write_text(
        "type NamespaceSpec struct {\n"
        '\tGrace *int64 `json:"grace,omitempty" protobuf:"varint,3,opt,name=grace"`\n'
        "}\n"
    )
    (meta / "generated.proto").write_text(
        "package k8s.io.apimachinery.pkg.apis.meta.v1;\n"
        "message ObjectMeta {\n  optional string name = 1;\n}\n"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert protogen.main([str(api), str(machinery)]) == 0
    namespace: dict[str, object] = {}
    exec(compile(out.getvalue(), "protoschema.py", "exec"), namespace)
    assert namespace["MESSAGES"] == {
        "k8s.io.api.core.v1.Namespace": {
            1: ["metadata", "optional", "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"],
            2: ["spec", "optional", "k8s.io.api.core.v1.NamespaceSpec"],
        },
        "k8s.io.api.core.v1.NamespaceSpec": {
            1: ["finalizers", "repeated", "string"],
            2: ["extra", "map", "string"],
            3: ["grace", "optional", "int64", "ptr"],
        },
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta": {1: ["name", "optional", "string"]},
    }


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_a_protobuf_body_decodes_with_the_table() -> None:
    meta = _field(1, b"proto-ns")
    raw = _field(1, meta)
    type_meta = _field(1, b"v1") + _field(2, b"Namespace")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)
    decoded = protobuf.decode(body)
    assert decoded["kind"] == "Namespace"
    assert decoded["apiVersion"] == "v1"
    assert decoded["metadata"] == {"name": "proto-ns"}
