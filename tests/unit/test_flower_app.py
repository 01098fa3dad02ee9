"""The app Flower runs with: the producers' transport, and one line on a bad setting."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.processes import BIN, ROOT, base_env


def test_flower_watches_the_broker_through_kombus_own_redis_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    from producer.flower import flower_app  # noqa: PLC0415 - builds from the environment

    app = flower_app()
    with app.connection() as connection:
        # The URI Flower maps to its Redis broker client (the worker's own transport's
        # URI has no scheme Flower knows, so its Broker page said "not supported").
        assert connection.as_uri().startswith("redis://")
    assert app.conf.task_default_queue == "eksops"


def test_flower_without_a_broker_setting_exits_with_one_line_saying_what_to_set() -> None:
    completed = subprocess.run(
        [str(BIN / "celery"), "-A", "producer.flower", "flower", "--port=1"],
        cwd=ROOT,
        env=base_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "eksops flower: invalid configuration: set REDIS_URL (or CELERY_BROKER_URL), "
        "e.g. redis://127.0.0.1:6379/0"
    ]
