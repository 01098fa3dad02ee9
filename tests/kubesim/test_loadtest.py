"""``python -m kubesim.loadtest`` against the session simulator: it runs and reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubesim import Simulator, loadtest


def test_the_watch_mode_delivers_every_added_event(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "kubesim.env"
    sim.write_env_file(env_file)
    argv = ["--env-file", str(env_file), "--mode", "watch", "--jobs", "30"]
    assert loadtest.main([*argv, "--watchers", "2", "--concurrency", "3"]) == 0
    line = capsys.readouterr().out
    assert "errors 0" in line
    assert "60 of 60 ADDED events delivered" in line
    assert re.search(r"client CPU [\d.]+s", line)


def test_the_create_mode_reports_rate_and_latency(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "kubesim.env"
    sim.write_env_file(env_file)
    argv = ["--env-file", str(env_file), "--mode", "create", "--duration", "0.5"]
    assert loadtest.main([*argv, "--concurrency", "2"]) == 0
    line = capsys.readouterr().out
    assert re.match(r"\d+ req/s \(\d+ authenticated Job creates over TLS", line)
    assert "errors 0" in line


def test_the_send_stamp_is_read_from_the_event_line() -> None:
    line = (
        b'{"type":"ADDED","object":{"metadata":{"annotations":'
        b'{"loadtest.kubesim.eksops.io/sent":"1700000000.25"}}}}'
    )
    assert loadtest._sent_at(line) == 1700000000.25
    assert loadtest._sent_at(b'{"type":"ADDED","object":{}}') is None
