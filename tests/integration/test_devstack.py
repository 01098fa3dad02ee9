"""The Quick start's run command: the whole stack on embedded defaults, run as a new user would.

One test walks through a first run (a job, its log lines in ``.run``, kubectl through
the generated kubeconfig), a second ``make run`` beside the first (refused, nothing
overwritten), and a restart (same ports, same Flower password, the cluster's objects
and the results still agreeing).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.services import free_port, read_env_file
from tests.support.processes import ROOT, base_env, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _http_text(url: str, auth: str | None = None) -> str:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def _http_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class RunningStack:
    """One ``python -m devstack`` process and what it printed."""

    def __init__(self, run_dir: Path, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--run-dir", str(run_dir), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        stdout = self.process.stdout
        assert stdout is not None
        self._reader = threading.Thread(
            target=lambda: self.output.extend(iter(stdout.readline, "")), daemon=True
        )
        self._reader.start()

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_up(self) -> str:
        def up() -> bool:
            assert self.process.poll() is None, self.text
            return "stack is up" in self.text

        wait_until(up, timeout=150, interval=0.2, describe=lambda: self.text)
        return self.text

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(60)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


@contextmanager
def running(run_dir: Path, env: dict[str, str], *args: str) -> Iterator[RunningStack]:
    stack = RunningStack(run_dir, env, *args)
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.text
        assert "Stopped valkey" in stack.text


def _flower(banner: str) -> tuple[str, str]:
    found = re.search(r"Flower:\s+(\S+)\s+\(user (\S+), password (\S+)\)", banner)
    assert found, banner
    return found.group(1), f"{found.group(2)}:{found.group(3)}"


@pytest.mark.timeout(420)
def test_the_local_stack_runs_a_job_keeps_its_state_and_runs_once_per_directory(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    env = base_env({})
    env.pop("FLOWER_BASIC_AUTH", None)
    ports = ["--flower-port", str(free_port()), "--gateway-port", str(free_port())]

    with running(run_dir, env, *ports) as first:
        banner = first.wait_up()
        assert "embedded Valkey" in banner
        assert "kubesim 'eksops-local'" in banner
        flower, auth = _flower(banner)
        assert _http_status(flower) == 401
        assert _http_status(flower, auth) == 200
        gateway = re.search(r"Gateway:\s+(\S+)/docs", banner)
        assert gateway
        assert _http_status(f"{gateway.group(1)}/health") == 200
        assert _http_status(f"{gateway.group(1)}/docs") == 200

        # A job, and its request followed through every process's log in the run dir.
        stack_env = read_env_file(run_dir / "stack.env")
        completed = run_cli(
            ["create-job", "-f", str(ROOT / "examples/job.yaml"), "--wait", "60", "--json"],
            stack_env,
        )
        assert completed.returncode == 0, completed.stderr
        created = json.loads(completed.stdout)
        assert created["state"] == "succeeded"
        job = created["result"]["job_name"]
        tag = created["request_id"].replace("-", "")[:8]
        worker_log = (run_dir / "worker.log").read_text()
        assert f"START create_job job={job}" in worker_log
        assert f"[{tag}]" in worker_log
        assert "Logs:" in banner
        assert "worker" in banner.split("Logs:")[1].splitlines()[0]

        # The banner says where the metrics are; they count the job; Flower shows the queue.
        worker_metrics, gateway_metrics = re.findall(r"Metrics:\s+(\S+)", banner)
        started = 'eksops_requests_started_total{lane="interactive",operation="create_job"} 1.0'
        assert started in _http_text(worker_metrics)
        assert 'eksops_queue_messages{lane="interactive"} 0.0' in _http_text(gateway_metrics)
        assert "eksops" in _http_text(f"{flower}/broker", auth)

        # kubectl reaches the simulated cluster through the kubeconfig the stack wrote.
        assert f"kubectl --kubeconfig {run_dir}/kubeconfig" in banner or "kubectl:" in banner
        kubectl = shutil.which("kubectl")
        if kubectl:
            listed = subprocess.run(
                [kubectl, "--kubeconfig", str(run_dir / "kubeconfig"), "get", "jobs", "-A"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert listed.returncode == 0, listed.stderr
            assert job in listed.stdout

        # A second run beside the first says so and changes nothing.
        before = (run_dir / "stack.env").read_text()
        second = subprocess.run(
            [sys.executable, "-m", "devstack", "--run-dir", str(run_dir), *ports],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr + second.stdout
        assert (run_dir / "stack.env").read_text() == before
        assert first.process.poll() is None

    # A restart keeps the ports, the password, the cluster's objects and the results.
    with running(run_dir, env, *ports) as again:
        banner_again = again.wait_up()
        assert _flower(banner_again) == (flower, auth)
        assert (run_dir / "stack.env").read_text() == before
        stack_env = read_env_file(run_dir / "stack.env")
        polled = run_cli(["task", created["request_id"], "--json"], stack_env)
        assert json.loads(polled.stdout)["state"] == "succeeded"
        # Flower kept its task history across the restart (.run/flower.db).
        task = json.loads(_http_text(f"{flower}/api/task/info/{created['request_id']}", auth))
        assert (task["name"], task["state"]) == ("eksops.create_job", "SUCCESS")
        status = run_cli(["job-status", job, "--wait", "60", "--json"], stack_env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["job_name"] == job
