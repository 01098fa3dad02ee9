"""Namespace operations: idempotent creation, protection, managed-only deletion."""

from __future__ import annotations

import uuid

import pytest

from kubesim import Simulator
from worker import errors
from worker.operations import ClusterClient, create_namespace, delete_namespace


def test_create_namespace_returns_the_seed_shape(cluster: ClusterClient, request_id: str) -> None:
    created = create_namespace(cluster=cluster, request_id=request_id, name="team-a")
    assert (created.namespace_name, created.status) == ("team-a", "created")
    assert created.creation_timestamp.endswith("+00:00")


def test_the_same_request_twice_creates_it_once(cluster: ClusterClient, request_id: str) -> None:
    first = create_namespace(cluster=cluster, request_id=request_id, name="team-b")
    assert create_namespace(cluster=cluster, request_id=request_id, name="team-b") == first


def test_an_existing_namespace_from_elsewhere_is_a_conflict(cluster: ClusterClient) -> None:
    with pytest.raises(errors.Conflict, match='namespaces "kube-public" already exists'):
        create_namespace(cluster=cluster, request_id=str(uuid.uuid4()), name="kube-public")


@pytest.mark.parametrize("name", ["kube-system", "default", "kube-node-lease", "amazon-guardduty"])
def test_protected_namespaces_are_refused_without_any_api_call(
    cluster: ClusterClient, kubesim_env: Simulator, name: str
) -> None:
    kubesim_env.admin.clear_counters()
    with pytest.raises(errors.ProtectedNamespace, match="is protected"):
        delete_namespace(cluster=cluster, name=name, allow_unmanaged=True)
    assert kubesim_env.admin.count("*", "namespaces") == 0


def test_a_configured_protected_namespace_is_refused(cluster: ClusterClient) -> None:
    with pytest.raises(errors.ProtectedNamespace, match="configured list"):
        delete_namespace(
            cluster=cluster, name="payments", allow_unmanaged=True, protected=["payments"]
        )


def test_a_namespace_eksops_did_not_create_is_refused_unless_allowed(
    cluster: ClusterClient,
) -> None:
    cluster.call(cluster.core.create_namespace, body={"metadata": {"name": "foreign"}})
    with pytest.raises(errors.Forbidden) as caught:
        delete_namespace(cluster=cluster, name="foreign", allow_unmanaged=False)
    assert caught.value.code == "UnmanagedNamespace"
    assert (
        delete_namespace(cluster=cluster, name="foreign", allow_unmanaged=True).status == "success"
    )


def test_a_managed_namespace_is_deleted(cluster: ClusterClient, request_id: str) -> None:
    create_namespace(cluster=cluster, request_id=request_id, name="team-c")
    deleted = delete_namespace(cluster=cluster, name="team-c", allow_unmanaged=False)
    assert deleted.model_dump() == {
        "message": "Namespace team-c deleted successfully",
        "status": "success",
    }
    phase = cluster.call(cluster.core.read_namespace, name="team-c")["status"]["phase"]
    assert phase == "Terminating"


def test_deleting_a_missing_namespace_fails_first_time_but_succeeds_on_a_redelivery(
    cluster: ClusterClient,
) -> None:
    with pytest.raises(errors.NotFound, match='namespaces "ghost" not found'):
        delete_namespace(cluster=cluster, name="ghost", allow_unmanaged=False)
    assert (
        delete_namespace(cluster=cluster, name="ghost", allow_unmanaged=False, attempt=2).status
        == "success"
    )
