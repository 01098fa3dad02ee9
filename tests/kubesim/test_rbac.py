"""Admin deny rules answer with the apiserver's exact 403 Forbidden texts."""

from __future__ import annotations

from kubernetes import client as k8s

from kubesim import AdminClient

from .conftest import api_error, job_manifest

CALLER = "arn:aws:sts::123456789012:assumed-role/eksops-worker/i-0123456789abcdef0"


def test_denied_namespace_create_names_the_caller_and_the_cluster_scope(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.deny(verb="create", resource="namespaces")

    status, body, _ = api_error(lambda: core.create_namespace({"metadata": {"name": "team-b"}}))

    assert status == 403
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'namespaces is forbidden: User "{CALLER}" cannot create resource "namespaces" '
        'in API group "" at the cluster scope',
        "reason": "Forbidden",
        "details": {"kind": "namespaces"},
        "code": 403,
    }


def test_denied_job_create_names_the_group_and_namespace_but_no_object(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.deny(verb="create", resource="jobs", namespace="team-a")

    status, body, _ = api_error(lambda: batch.create_namespaced_job(namespace, job_manifest("x")))

    assert status == 403
    assert body["message"] == (
        f'jobs.batch is forbidden: User "{CALLER}" cannot create resource "jobs" '
        'in API group "batch" in the namespace "team-a"'
    )
    assert body["details"] == {"group": "batch", "kind": "jobs"}


def test_denied_job_read_puts_the_job_name_before_is_forbidden(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.deny(verb="get", resource="jobs")

    status, body, _ = api_error(lambda: batch.read_namespaced_job("x", namespace))

    assert status == 403
    assert body["message"] == (
        f'jobs.batch "x" is forbidden: User "{CALLER}" cannot get resource "jobs" '
        'in API group "batch" in the namespace "team-a"'
    )
    assert body["details"] == {"name": "x", "group": "batch", "kind": "jobs"}


def test_a_namespace_read_is_scoped_to_that_namespace(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.deny(verb="get", resource="namespaces", name="kube-system")

    status, body, _ = api_error(lambda: core.read_namespace("kube-system"))

    assert status == 403
    assert body["message"] == (
        f'namespaces "kube-system" is forbidden: User "{CALLER}" cannot get resource '
        '"namespaces" in API group "" in the namespace "kube-system"'
    )
    assert core.read_namespace("default").metadata.name == "default"


def test_a_status_read_is_denied_as_the_subresource(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.deny(verb="get", resource="jobs/status")

    _, body, _ = api_error(lambda: batch.read_namespaced_job_status("x", namespace))

    assert 'cannot get resource "jobs/status" in API group "batch"' in body["message"]


def test_wildcards_match_verbs_and_namespace_prefixes(
    admin: AdminClient, batch: k8s.BatchV1Api, namespace: str
) -> None:
    admin.deny(verb="*", resource="*", namespace="team-*")

    status, body, _ = api_error(lambda: batch.list_namespaced_job(namespace))

    assert status == 403
    assert body["message"].startswith("jobs.batch is forbidden:")
    assert 'cannot list resource "jobs"' in body["message"]
    assert batch.list_namespaced_job("default").items == []


def test_removing_a_deny_rule_restores_access(admin: AdminClient, core: k8s.CoreV1Api) -> None:
    rule = admin.deny(verb="list", resource="namespaces")
    api_error(core.list_namespace)

    admin.remove_deny(rule["id"])

    assert core.list_namespace().items
    assert admin.denies() == []


def test_the_caller_arn_in_messages_is_configurable(
    admin: AdminClient, core: k8s.CoreV1Api
) -> None:
    admin.configure(caller_arn="arn:aws:sts::123456789012:assumed-role/other/i-1")
    admin.deny(verb="list", resource="namespaces")

    _, body, _ = api_error(core.list_namespace)

    assert 'User "arn:aws:sts::123456789012:assumed-role/other/i-1" cannot list' in body["message"]
