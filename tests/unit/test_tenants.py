"""Tenant scope, the keys file and its reloads, and ``eksops keys new``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli.main import cli
from producer.gateway.keyring import Keyring, key_hash
from worker.contracts import Operation
from worker.errors import ConfigurationInvalid, OutOfScope
from worker.keysfile import parse_keys_file
from worker.tenants import Scope, matches

KEY = "a-key-of-team-a-0123456789"


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("team-a", ("team-a",), True),
        ("team-ab", ("team-a",), False),
        ("team-a-x", ("team-a-*",), True),
        ("team-a", ("team-a-*",), False),
        ("team-ab", ("team-a-*",), False),
        ("team-ab", ("team-a*",), True),
        ("anything", ("*",), True),
        ("team-a", (), False),
    ],
)
def test_namespace_patterns(name: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert matches(name, patterns) is expected


def test_a_scope_names_what_refused() -> None:
    scope = Scope(namespaces=("team-a",), operations=(Operation.CREATE_JOB,))
    scope.check(Operation.CREATE_JOB, {"namespace": "team-a"})
    with pytest.raises(OutOfScope, match=r"\(scope.operations: create_job\)"):
        scope.check(Operation.DELETE_NAMESPACE, {"namespace_name": "team-a"})
    with pytest.raises(OutOfScope, match=r"Namespace default is outside"):
        scope.check(Operation.CREATE_JOB, {})


def entry(**tenant: object) -> str:
    base = {"keys": [{"id": "a-1", "sha256": key_hash(KEY)}], **tenant}
    return json.dumps({"tenants": {"team-a": base}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tenants: [", "not valid YAML at line"),
        ("- a list", "expected a mapping with 'tenants'"),
        (json.dumps({"tenants": {"team-a": {"keys": []}}}), "keys"),
        (entry(scope={"namespaces": ["Team_A"]}), "namespace pattern 'Team_A'"),
        (entry(quotas={"in_flight": 0}), "in_flight"),
        (entry(policy={"pod_security": "loose"}), "pod_security"),
        (entry(colour="blue"), "colour"),
        (
            json.dumps({"tenants": {"default": {"keys": [{"id": "x", "sha256": "0" * 64}]}}}),
            "reserved",
        ),
        (json.dumps({"tenants": {"a": {"keys": [{"id": "x", "sha256": "not-hex"}]}}}), "sha256"),
        (
            json.dumps(
                {
                    "tenants": {
                        "a": {"keys": [{"id": "x", "sha256": "0" * 64}]},
                        "b": {"keys": [{"id": "x", "sha256": "1" * 64}]},
                    }
                }
            ),
            "key id x is used twice",
        ),
    ],
)
def test_a_bad_keys_file_is_one_line_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationInvalid) as caught:
        parse_keys_file(text, source="keys.yaml")
    assert problem in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("keys.yaml: ")


def test_more_than_two_keys_per_tenant_is_refused() -> None:
    keys = [{"id": f"k{n}", "sha256": f"{n}" * 64} for n in range(3)]
    with pytest.raises(ConfigurationInvalid, match="keys"):
        parse_keys_file(json.dumps({"tenants": {"a": {"keys": keys}}}), source="f")


def test_a_missing_keys_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid, match="cannot be read"):
        Keyring(keys_file=tmp_path / "absent.yaml")


def test_the_keyring_knows_file_and_legacy_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(entry())
    keyring = Keyring(api_keys=(b"legacy-key-0123456789",), keys_file=path)
    found = keyring.principal(KEY)
    assert found is not None
    assert (found.tenant.name, found.key_id) == ("team-a", "a-1")
    legacy = keyring.principal("legacy-key-0123456789")
    assert legacy is not None
    assert legacy.tenant.unrestricted
    assert keyring.principal("nope") is None
    assert keyring.principal(None) is None


def test_keys_new_prints_a_key_whose_hash_is_the_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "team-a", "--id", "a-2027"])
    assert result.exit_code == 0, result.output
    key_line, _, entry_line = result.output.splitlines()
    key = key_line.removeprefix("key: ")
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert entry_line == f"  - {{id: a-2027, sha256: {digest}}}"
    text = f"tenants:\n  team-a:\n    keys:\n    {entry_line.strip()}\n"
    tenant, key_id = parse_keys_file(text, source="f").by_hash[digest]
    assert (tenant.name, key_id) == ("team-a", "a-2027")


def test_keys_new_refuses_a_bad_tenant_name() -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "Team A"])
    assert result.exit_code == 2
