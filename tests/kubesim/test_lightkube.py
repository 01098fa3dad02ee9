"""lightkube, a client nobody here wrote: watch, wait, patch and server-side apply."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType

from kubesim import Simulator

from .conftest import job_manifest


@pytest.fixture
def client(sim: Simulator, tmp_path: Path) -> Iterator[Client]:
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
    made = Client(KubeConfig.from_file(kubeconfig))
    yield made
    made._client._client.close()  # no public close() before lightkube 1.0


def test_watch_sees_a_jobs_pod_go_to_succeeded(client: Client) -> None:
    client.create(Namespace(metadata=ObjectMeta(name="lk")))
    client.create(Job.from_dict(job_manifest("lkjob")), namespace="lk")
    phases = []
    for event_type, pod in client.watch(Pod, namespace="lk", labels={"job-name": "lkjob"}):
        phases.append((event_type, pod.status.phase))
        if pod.status.phase == "Succeeded":
            break
    assert phases[0][0] == "ADDED"
    assert phases[-1] == ("MODIFIED", "Succeeded")


def test_wait_for_a_job_condition(client: Client) -> None:
    client.create(Job.from_dict(job_manifest("waited")), namespace="default")
    job = client.wait(Job, "waited", namespace="default", for_conditions=["Complete"])
    assert job.status.succeeded == 1


def test_patches_and_server_side_apply(client: Client) -> None:
    client.create(Job.from_dict(job_manifest("lkp")), namespace="default")
    merged = client.patch(
        Job,
        "lkp",
        {"metadata": {"labels": {"x": "1"}}},
        namespace="default",
        patch_type=PatchType.MERGE,
    )
    assert merged.metadata.labels["x"] == "1"
    strategic = client.patch(
        Job, "lkp", {"metadata": {"annotations": {"y": "2"}}}, namespace="default"
    )
    assert strategic.metadata.annotations == {"y": "2"}
    applied = client.apply(
        Job.from_dict(job_manifest("lka")), namespace="default", field_manager="lightkube-test"
    )
    assert applied.metadata.managedFields[0].manager == "lightkube-test"
    again = client.apply(
        Job.from_dict(job_manifest("lka")), namespace="default", field_manager="lightkube-test"
    )
    assert again.metadata.generation == applied.metadata.generation == 1
