"""A realistic kubectl session against kubesim, with real kubectl binaries.

Runs for each installed kubectl of ``VERSIONS`` (the machines carry them in
``/usr/lib/google-cloud-sdk/bin``); a missing one is skipped with its path. The
kubeconfig is the one ``python -m kubesim kubeconfig`` writes, so the exec
credential plugin is exercised too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubesim import Simulator

VERSIONS = ("1.29", "1.33")
BIN_DIR = Path("/usr/lib/google-cloud-sdk/bin")
JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: applied
  namespace: {namespace}
  labels:
    app: demo
spec:
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "echo hello from applied; echo {word}"]
      restartPolicy: Never
"""


def _binary(version: str) -> Path:
    path = BIN_DIR / f"kubectl.{version}"
    if path.exists():
        return path
    found = shutil.which(f"kubectl.{version}")
    if found is None:
        pytest.skip(f"kubectl {version} is not installed (looked for {path})")
    return Path(found)


@pytest.fixture
def kubectl(
    sim: Simulator, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    binary = _binary(request.param)
    env_file = sim.write_env_file(tmp_path / "kubesim.env")
    kubeconfig = tmp_path / "kubeconfig"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesim",
            "kubeconfig",
            "--env-file",
            str(env_file),
            "--out",
            str(kubeconfig),
        ],
        check=True,
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}

    def run(*args: str, check: bool = True) -> str:
        done = subprocess.run(
            [str(binary), "--cache-dir", str(tmp_path / "cache"), *args],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done.stdout + done.stderr

    return run


@pytest.mark.parametrize("kubectl", VERSIONS, indirect=True)
def test_a_kubectl_session_behaves_as_against_a_cluster(
    kubectl: Callable[..., str], tmp_path: Path
) -> None:
    assert kubectl("create", "ns", "demo").strip() == "namespace/demo created"
    out = kubectl("create", "job", "hi", "--image=busybox", "-n", "demo", "--", "echo", "hi")
    assert out.strip() == "job.batch/hi created"
    assert kubectl(
        "wait", "--for=condition=complete", "job/hi", "-n", "demo", "--timeout=30s"
    ).strip() == ("job.batch/hi condition met")
    assert kubectl("logs", "job/hi", "-n", "demo") == "hi\n"

    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB_YAML.format(namespace="demo", word="one"))
    assert kubectl("apply", "-f", str(manifest)).strip() == "job.batch/applied created"
    assert kubectl("apply", "-f", str(manifest)).strip() == "job.batch/applied unchanged"
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(manifest))
    assert kubectl("apply", "--validate=strict", "--dry-run=server", "-f", str(manifest))
    assert (
        kubectl("label", "job", "applied", "-n", "demo", "team=blue").strip()
        == "job.batch/applied labeled"
    )
    assert (
        kubectl("annotate", "job", "applied", "-n", "demo", "note=x").strip()
        == "job.batch/applied annotated"
    )
    kubectl("wait", "--for=condition=complete", "job/applied", "-n", "demo", "--timeout=30s")

    jobs = kubectl("get", "jobs", "-n", "demo").splitlines()
    assert jobs[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert sorted(line.split()[1] for line in jobs[1:]) == ["Complete", "Complete"]
    pods = kubectl("get", "pods", "-n", "demo").splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert {line.split()[2] for line in pods[1:]} == {"Completed"}
    assert kubectl("get", "ns", "demo").splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    described = kubectl("describe", "job", "applied", "-n", "demo")
    assert "SuccessfulCreate" in described
    assert "Completed" in described
    events = kubectl("events", "-n", "demo")
    assert "Scheduled" in events
    assert "Started" in events
    assert kubectl("auth", "can-i", "create", "jobs", "-n", "demo").strip() == "yes"
    assert "assumed-role/eksops-worker" in kubectl("auth", "whoami")
    assert "backoffLimit" in kubectl("explain", "job.spec.backoffLimit")

    watched: list[str] = []
    watcher = threading.Thread(
        target=lambda: watched.append(
            kubectl("get", "pods", "-n", "demo", "-w", "--request-timeout=4s", check=False)
        )
    )
    watcher.start()
    kubectl("create", "job", "seen", "--image=busybox", "-n", "demo", "--", "echo", "x")
    watcher.join(20)
    assert any(line.startswith("seen-") for line in watched[0].splitlines())

    assert "(server dry run)" in kubectl("delete", "ns", "demo", "--dry-run=server")
    assert kubectl("get", "ns", "demo").splitlines()[1].split()[1] == "Active"
    assert kubectl("get", "jobs", "-n", "demo", "-o", "name").count("job.batch/") == 3
    assert kubectl("delete", "job", "applied", "-n", "demo", "--cascade=foreground").strip() == (
        'job.batch "applied" deleted'
    )
    assert "applied" not in kubectl("get", "jobs", "-n", "demo")
