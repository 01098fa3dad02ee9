"""Tenants' objects in kubesim: labelled at creation, not found by another tenant."""

from __future__ import annotations

import copy
import uuid

import pytest

from tests.operations.conftest import JOB
from worker import errors
from worker.contracts import TENANT_LABEL
from worker.operations import (
    ClusterClient,
    create_job,
    create_namespace,
    delete_job,
    delete_namespace,
    get_job_status,
)
from worker.operations.logs import get_job_logs


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_tenants_job_and_the_namespace_made_for_it_carry_the_tenant_label(
    cluster: ClusterClient,
) -> None:
    manifest = copy.deepcopy(JOB)
    manifest["metadata"] = {"name": "train", "labels": {TENANT_LABEL: "team-b"}}
    create_job(
        cluster=cluster,
        request_id=new_id(),
        manifest=manifest,
        namespace="team-a-ml",
        tenant="team-a",
    )
    job = cluster.call(cluster.batch.read_namespaced_job, name="train", namespace="team-a-ml")
    assert job["metadata"]["labels"][TENANT_LABEL] == "team-a"
    assert job["spec"]["template"]["metadata"]["labels"][TENANT_LABEL] == "team-a"
    namespace = cluster.call(cluster.core.read_namespace, name="team-a-ml")
    assert namespace["metadata"]["labels"][TENANT_LABEL] == "team-a"


def test_another_tenants_job_reads_and_deletes_as_not_found(cluster: ClusterClient) -> None:
    manifest = copy.deepcopy(JOB)
    manifest["metadata"] = {"name": "theirs"}
    create_job(
        cluster=cluster, request_id=new_id(), manifest=manifest, namespace="shared", tenant="a"
    )
    with pytest.raises(errors.NotFound) as missing:
        get_job_status(cluster=cluster, name="nothing-here", namespace="shared", tenant="b")
    with pytest.raises(errors.NotFound) as foreign:
        get_job_status(cluster=cluster, name="theirs", namespace="shared", tenant="b")
    assert foreign.value.message == missing.value.message.replace("nothing-here", "theirs")
    assert foreign.value.details["reason"] == missing.value.details["reason"] == "NotFound"
    with pytest.raises(errors.NotFound):
        delete_job(cluster=cluster, name="theirs", namespace="shared", tenant="b")
    with pytest.raises(errors.NotFound):
        get_job_logs(cluster=cluster, name="theirs", namespace="shared", tail_lines=5, tenant="b")
    assert get_job_status(cluster=cluster, name="theirs", namespace="shared", tenant="a")
    assert get_job_status(cluster=cluster, name="theirs", namespace="shared")  # trusted
    delete_job(cluster=cluster, name="theirs", namespace="shared", tenant="a")


def test_another_tenants_namespace_is_not_found_for_deletion(cluster: ClusterClient) -> None:
    create_namespace(cluster=cluster, request_id=new_id(), name="team-x", tenant="x")
    with pytest.raises(errors.NotFound, match='namespaces "team-x" not found'):
        delete_namespace(cluster=cluster, name="team-x", allow_unmanaged=False, tenant="y")
    deleted = delete_namespace(cluster=cluster, name="team-x", allow_unmanaged=False, tenant="x")
    assert deleted.status == "success"
