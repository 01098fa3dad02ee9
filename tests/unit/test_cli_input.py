"""`eksops create-jobs` reads its input or says, with exit code 2, what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.cli.bulk import read_items
from producer.cli.common import EXIT_INVALID

JOB = '{"spec": {"template": {"spec": {"containers": [], "restartPolicy": "Never"}}}}'


def test_json_lines_and_yaml_documents_become_create_job_requests(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        JOB + "\n\n" + '{"job_manifest": ' + JOB + ', "namespace": "b"}\n'
    )
    (tmp_path / "b.yaml").write_text("spec: {}\n---\nspec: {backoffLimit: 1}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    items = list(read_items(str(tmp_path), "team-a"))
    assert [item.arguments["namespace"] for item in items] == ["team-a", "b", "team-a", "team-a"]
    assert items[3].arguments["job_manifest"] == {"spec": {"backoffLimit": 1}}
    # Each item says where it was read, lines and documents counted from 1.
    assert [item.source.removeprefix(f"{tmp_path}/") for item in items] == [
        "a.jsonl:1",
        "a.jsonl:3",
        "b.yaml (document 1)",
        "b.yaml (document 2)",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", JOB.encode() + b"\n{not json\n", "bad.jsonl:2 is not JSON"),
        ("latin1.jsonl", b'{"name": "caf\xe9"}\n', "is not UTF-8 text"),
        ("latin1.yaml", b"name: caf\xe9\n", "is not UTF-8 text"),
        ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "nests too deeply"),
        ("bad.yaml", b"spec: [unclosed\n", "is not valid YAML or JSON"),
    ],
)
def test_unreadable_input_is_a_clear_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit) as exited:
        list(read_items(str(path), "default"))
    assert exited.value.code == EXIT_INVALID
    assert message in " ".join(capsys.readouterr().err.split())
