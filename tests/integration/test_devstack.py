"""The Quick start's run command: the whole stack on embedded defaults, then a job."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack.services import free_port, read_env_file
from tests.support.processes import ROOT, base_env, run_cli

pytestmark = pytest.mark.integration


def _http_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.timeout(180)
def test_the_local_stack_starts_runs_a_job_and_stops_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    flower_port, gateway_port = free_port(), free_port()
    env = base_env(
        {"FLOWER_BASIC_AUTH": "eksops:s3cret-for-test", "GATEWAY_PORT": str(gateway_port)}
    )
    stack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--run-dir",
            str(run_dir),
            "--flower-port",
            str(flower_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(iter(stack.stdout.readline, "")), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("stack is up" in line for line in output):
            assert stack.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.2)
        banner = "".join(output)
        assert "embedded Valkey" in banner
        assert "kubesim 'eksops-local'" in banner

        stack_env = read_env_file(run_dir / "stack.env")
        completed = run_cli(
            ["create-job", "-f", str(ROOT / "examples/job.yaml"), "--wait", "60", "--json"],
            stack_env,
        )
        assert completed.returncode == 0, completed.stderr
        result = json.loads(completed.stdout)
        assert result["state"] == "succeeded"
        assert result["result"]["job_name"].startswith("hello-")

        assert f"Gateway:  http://127.0.0.1:{gateway_port}/docs" in banner
        assert _http_status(f"http://127.0.0.1:{gateway_port}/health") == 200

        flower = f"http://127.0.0.1:{flower_port}/"
        assert _http_status(flower) == 401
        assert _http_status(flower, "eksops:s3cret-for-test") == 200
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(60)
        reader.join(5)
        stack.stdout.close()  # type: ignore[union-attr]
    assert code == 0, "".join(output)
    assert "Stopped valkey" in "".join(output)
