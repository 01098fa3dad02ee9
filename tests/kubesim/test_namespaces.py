"""Namespaces: create/get/list/delete, the Terminating phase and protected names."""

from __future__ import annotations

import time

from kubernetes import client as k8s

from kubesim import AdminClient

from .conftest import api_error, job_manifest

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _wait_gone(core: k8s.CoreV1Api, name: str, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except k8s.ApiException as exc:
            return int(exc.status)
        time.sleep(0.05)
    raise AssertionError(f"namespace {name} still exists")


def test_the_cluster_starts_with_the_four_system_namespaces(core: k8s.CoreV1Api) -> None:
    names = [ns.metadata.name for ns in core.list_namespace().items]

    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_a_created_namespace_is_active_labelled_and_finalized(core: k8s.CoreV1Api) -> None:
    created = core.create_namespace({"metadata": {"name": "team-b"}})

    assert created.status.phase == "Active"
    assert created.metadata.labels == {"kubernetes.io/metadata.name": "team-b"}
    assert created.spec.finalizers == ["kubernetes"]
    assert created.metadata.uid
    assert int(created.metadata.resource_version) > 0
    assert core.read_namespace_status("team-b").metadata.uid == created.metadata.uid


def test_generate_name_appends_five_characters_from_the_kubernetes_alphabet(
    core: k8s.CoreV1Api,
) -> None:
    created = core.create_namespace({"metadata": {"generateName": "run-"}})

    suffix = created.metadata.name.removeprefix("run-")
    assert len(suffix) == 5
    assert set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_creating_an_existing_namespace_is_already_exists(
    core: k8s.CoreV1Api, namespace: str
) -> None:
    status, body, _ = api_error(lambda: core.create_namespace({"metadata": {"name": namespace}}))

    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'namespaces "team-a" already exists'
    assert body["details"] == {"name": "team-a", "kind": "namespaces"}


def test_an_invalid_name_is_invalid_with_the_dns_label_message(core: k8s.CoreV1Api) -> None:
    status, body, _ = api_error(lambda: core.create_namespace({"metadata": {"name": "Team_A"}}))

    assert status == 422
    assert body["reason"] == "Invalid"
    assert (
        body["message"]
        == f'Namespace "Team_A" is invalid: metadata.name: Invalid value: "Team_A": {LABEL_MESSAGE}'
    )
    assert body["details"] == {
        "name": "Team_A",
        "kind": "Namespace",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "Team_A": {LABEL_MESSAGE}',
                "field": "metadata.name",
            }
        ],
    }


def test_a_name_with_dots_is_invalid_because_it_contains_dots(core: k8s.CoreV1Api) -> None:
    _, body, _ = api_error(lambda: core.create_namespace({"metadata": {"name": "a.b"}}))

    assert (
        body["message"]
        == 'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    )


def test_a_missing_name_is_required(core: k8s.CoreV1Api) -> None:
    _, body, _ = api_error(lambda: core.create_namespace({"metadata": {}}))

    assert body["message"] == (
        'Namespace "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_reading_a_missing_namespace_is_not_found(core: k8s.CoreV1Api) -> None:
    status, body, _ = api_error(lambda: core.read_namespace("nope"))

    assert status == 404
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


def test_deleting_a_namespace_returns_it_terminating_then_it_disappears(
    core: k8s.CoreV1Api, namespace: str
) -> None:
    _, code, _ = core.delete_namespace_with_http_info(namespace)
    during = core.read_namespace(namespace)

    assert code == 200
    assert during.status.phase == "Terminating"
    assert during.metadata.deletion_timestamp is not None
    assert _wait_gone(core, namespace) == 404


def test_deleting_a_terminating_namespace_again_is_a_conflict(
    core: k8s.CoreV1Api, namespace: str
) -> None:
    core.delete_namespace(namespace)

    status, body, _ = api_error(lambda: core.delete_namespace(namespace))

    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on namespaces "team-a": The system is ensuring all '
        "content is removed from this namespace.  Upon completion, this namespace will "
        "automatically be purged by the system."
    )


def test_creating_a_terminating_namespace_says_it_is_being_deleted(
    core: k8s.CoreV1Api, namespace: str
) -> None:
    core.delete_namespace(namespace)

    status, body, _ = api_error(lambda: core.create_namespace({"metadata": {"name": namespace}}))

    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'object is being deleted: namespaces "team-a" already exists'


def test_creating_a_job_in_a_terminating_namespace_is_forbidden(
    core: k8s.CoreV1Api, batch: k8s.BatchV1Api, namespace: str
) -> None:
    core.delete_namespace(namespace)

    status, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, job_manifest("x")))

    assert status == 403
    assert body["message"] == (
        'jobs.batch "x" is forbidden: unable to create new content in namespace team-a '
        "because it is being terminated"
    )
    assert body["details"] == {
        "name": "x",
        "group": "batch",
        "kind": "jobs",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace team-a is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }


def test_jobs_disappear_with_their_namespace(
    core: k8s.CoreV1Api, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("x"))
    core.delete_namespace(namespace)
    _wait_gone(core, namespace)
    core.create_namespace({"metadata": {"name": namespace}})

    assert batch.list_namespaced_job(namespace).items == []


def test_protected_namespaces_may_not_be_deleted(core: k8s.CoreV1Api) -> None:
    for name in ("default", "kube-system", "kube-public"):
        status, body, _ = api_error(lambda name=name: core.delete_namespace(name))

        assert status == 403
        assert (
            body["message"]
            == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
        assert body["details"] == {"name": name, "kind": "namespaces"}


def test_deleting_a_missing_namespace_is_not_found(core: k8s.CoreV1Api) -> None:
    status, body, _ = api_error(lambda: core.delete_namespace("nope"))

    assert (status, body["message"]) == (404, 'namespaces "nope" not found')


def test_namespace_termination_time_is_configurable(
    admin: AdminClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    admin.configure(namespace_termination=60)
    core.delete_namespace(namespace)
    time.sleep(0.4)

    assert core.read_namespace(namespace).status.phase == "Terminating"


def test_namespaces_can_be_listed_by_label(core: k8s.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-b", "labels": {"tier": "batch"}}})

    listed = core.list_namespace(label_selector="tier=batch")

    assert [ns.metadata.name for ns in listed.items] == ["team-b"]
