"""``uvicorn producer.gateway:app`` refuses a bad configuration with one clear line."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.processes import BIN, ROOT, base_env


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "uvicorn"), "producer.gateway:app", "--port", "0"],
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {},
            "eksops gateway: invalid configuration: set REDIS_URL (or CELERY_BROKER_URL), "
            "e.g. redis://127.0.0.1:6379/0",
        ),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/0", "GATEWAY_API_KEYS": "changeme"},
            "eksops gateway: invalid configuration: GATEWAY_API_KEYS: key #1 is a placeholder; "
            "generate one, e.g. with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
        ),
    ],
    ids=["no-redis", "placeholder-key"],
)
def test_the_server_exits_2_with_one_line_saying_what_to_set(
    env: dict[str, str], line: str
) -> None:
    outcome = start(env)
    assert outcome.returncode == 2
    assert outcome.stderr.strip() == line
