"""``python -m kubesim``: env file once listening, usable by boto3, clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line)
    return {key: value for key, value in pairs}


def test_the_cli_writes_its_env_file_serves_eks_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "kubesim.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "--port",
            "0",
            "--cluster",
            "cli-demo",
            "--region",
            "eu-west-1",
            "--env-file",
            str(env_file),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        env = _read_env(env_file)
        eks = boto3.client(
            "eks",
            region_name=env["AWS_DEFAULT_REGION"],
            endpoint_url=env["AWS_ENDPOINT_URL_EKS"],
            verify=env["AWS_CA_BUNDLE"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        cluster = eks.describe_cluster(name="cli-demo")["cluster"]
        eks.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)

    assert env["EKS_CLUSTER_NAME"] == "cli-demo"
    assert env["EKS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL_EKS"].startswith("https://127.0.0.1:")
    assert cluster["arn"] == "arn:aws:eks:eu-west-1:123456789012:cluster/cli-demo"
    assert process.returncode == 0
    assert f"url={env['AWS_ENDPOINT_URL_EKS']}" in stderr
    assert (tmp_path / "state" / "kubesim-ca.key").exists()
