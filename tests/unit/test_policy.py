"""The Job policy: each rule refuses with the field it names; defaults are filled in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from worker.errors import PolicyViolation
from worker.policy import JobPolicy, PodSecurity, apply

BASE: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {
                "containers": [{"name": "c", "image": "ghcr.io/team-a/app:1"}],
                "restartPolicy": "Never",
            }
        }
    }
}
RESTRICTED_OK: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "c",
                        "image": "ghcr.io/team-a/app:1",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                        },
                    }
                ],
                "restartPolicy": "Never",
            }
        }
    }
}
POD = "spec.template.spec"
C0 = f"{POD}.containers[0]"


def manifest(base: dict[str, Any] = BASE, **pod: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body["spec"]["template"]["spec"].update(pod)
    return body


def container(base: dict[str, Any] = BASE, **fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body["spec"]["template"]["spec"]["containers"][0].update(fields)
    return body


def refused(policy: JobPolicy, body: dict[str, Any]) -> str:
    with pytest.raises(PolicyViolation) as caught:
        apply(policy, body)
    assert caught.value.http_status == 403
    return caught.value.message


BASELINE = JobPolicy(pod_security=PodSecurity.BASELINE)
RESTRICTED = JobPolicy(pod_security=PodSecurity.RESTRICTED)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (manifest(hostNetwork=True), f"{POD}.hostNetwork"),
        (manifest(hostPID=True), f"{POD}.hostPID"),
        (manifest(hostIPC=True), f"{POD}.hostIPC"),
        (
            manifest(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
            f"{POD}.volumes[0].hostPath",
        ),
        (container(securityContext={"privileged": True}), f"{C0}.securityContext.privileged"),
        (
            container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}),
            f"{C0}.securityContext.capabilities.add: SYS_ADMIN",
        ),
        (container(ports=[{"containerPort": 80, "hostPort": 80}]), f"{C0}.ports[0].hostPort"),
        (
            container(securityContext={"seccompProfile": {"type": "Unconfined"}}),
            f"{C0}.securityContext.seccompProfile.type",
        ),
        (
            container(securityContext={"procMount": "Unmasked"}),
            f"{C0}.securityContext.procMount",
        ),
        (
            manifest(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
            f"{POD}.securityContext.sysctls[0].name",
        ),
        (
            container(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
            f"{C0}.securityContext.seLinuxOptions.type",
        ),
        (
            container(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
            f"{C0}.securityContext.appArmorProfile.type",
        ),
        (
            container(livenessProbe={"httpGet": {"port": 80, "host": "169.254.169.254"}}),
            f"{C0}.livenessProbe.httpGet.host",
        ),
        (
            container(lifecycle={"preStop": {"tcpSocket": {"port": 1, "host": "10.0.0.1"}}}),
            f"{C0}.lifecycle.preStop.tcpSocket.host",
        ),
    ],
)
def test_baseline_refuses_each_privilege_naming_the_field(body: dict[str, Any], field: str) -> None:
    message = refused(BASELINE, body)
    assert message.startswith(field)
    assert "(Pod Security baseline)" in message


def test_baseline_allows_its_own_capabilities_and_plain_pods() -> None:
    body = container(securityContext={"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}})
    assert apply(BASELINE, body) == body
    assert apply(BASELINE, BASE) == BASE


def test_an_init_container_is_checked_like_the_others() -> None:
    body = manifest(
        initContainers=[{"name": "i", "image": "x", "securityContext": {"privileged": True}}]
    )
    assert refused(BASELINE, body).startswith(f"{POD}.initContainers[0].securityContext.privileged")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda c: c["securityContext"].pop("allowPrivilegeEscalation"),
            "allowPrivilegeEscalation",
        ),
        (lambda c: c["securityContext"]["capabilities"].update(drop=[]), "capabilities.drop"),
        (lambda c: c["securityContext"]["capabilities"].update(add=["CHOWN"]), "capabilities.add"),
        (lambda c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (lambda c: c["securityContext"].update(runAsUser=0), "runAsUser"),
    ],
)
def test_restricted_refuses_each_rule_naming_the_field(change: Any, field: str) -> None:
    body = copy.deepcopy(RESTRICTED_OK)
    change(body["spec"]["template"]["spec"]["containers"][0])
    message = refused(RESTRICTED, body)
    assert message.startswith(f"{C0}.securityContext.{field}")
    assert "(Pod Security restricted)" in message


def test_restricted_needs_a_seccomp_profile_and_allowed_volumes() -> None:
    assert apply(RESTRICTED, RESTRICTED_OK) == RESTRICTED_OK
    body = copy.deepcopy(RESTRICTED_OK)
    del body["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
    assert ".seccompProfile.type: must be RuntimeDefault" in refused(RESTRICTED, body)
    body = manifest(RESTRICTED_OK, volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}])
    assert refused(RESTRICTED, body).startswith(f"{POD}.volumes[0].nfs: volume type not allowed")
    ok = manifest(RESTRICTED_OK, volumes=[{"name": "e", "emptyDir": {}}])
    assert apply(RESTRICTED, ok) == ok


def test_restricted_includes_baseline() -> None:
    body = manifest(RESTRICTED_OK, hostNetwork=True)
    assert refused(RESTRICTED, body).startswith(f"{POD}.hostNetwork")


def test_images_must_come_from_an_allowed_registry() -> None:
    policy = JobPolicy(registries=("ghcr.io/team-a/",))
    assert apply(policy, BASE) == BASE
    body = container(image="docker.io/library/busybox")
    assert refused(policy, body) == (
        f"{C0}.image: 'docker.io/library/busybox' is not from an allowed registry "
        "(allowed: ghcr.io/team-a/)"
    )
    # A prefix must match from the start: a look-alike host is not the registry.
    assert refused(policy, container(image="evil.io/ghcr.io/team-a/x")).startswith(f"{C0}.image")


def test_resources_are_required_and_capped() -> None:
    policy = JobPolicy(require_resources=("cpu", "memory"), max_resources={"memory": "2Gi"})
    assert refused(policy, BASE) == f"{C0}.resources.requests.cpu: required"
    within = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    assert apply(policy, container(resources=within))
    over = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "3Gi"}}
    assert refused(policy, container(resources=over)) == (
        f"{C0}.resources.limits.memory: 3Gi is over the maximum 2Gi"
    )


def test_a_bad_maximum_is_refused_when_the_policy_is_read() -> None:
    with pytest.raises(ValueError, match=r"max_resources\.cpu"):
        JobPolicy(max_resources={"cpu": "lots"})


def test_the_deadline_is_required_and_capped_and_a_ttl_is_defaulted() -> None:
    policy = JobPolicy(max_active_deadline_seconds=3600, default_ttl_seconds_after_finished=600)
    assert refused(policy, BASE) == "spec.activeDeadlineSeconds: required (at most 3600)"
    body = copy.deepcopy(BASE)
    body["spec"]["activeDeadlineSeconds"] = 7200
    assert refused(policy, body) == "spec.activeDeadlineSeconds: 7200 is over 3600"
    body["spec"]["activeDeadlineSeconds"] = 60
    assert apply(policy, body)["spec"]["ttlSecondsAfterFinished"] == 600
    body["spec"]["ttlSecondsAfterFinished"] = 5
    assert apply(policy, body)["spec"]["ttlSecondsAfterFinished"] == 5


def test_service_accounts_are_limited() -> None:
    policy = JobPolicy(service_accounts=("runner",))
    assert refused(policy, BASE) == (
        f"{POD}.serviceAccountName: 'default' is not allowed (allowed: runner)"
    )
    assert apply(policy, manifest(serviceAccountName="runner"))


def test_apparmor_annotations_allow_only_the_default_or_a_local_profile() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/c"
    for value, allowed in (("runtime/default", True), ("localhost/mine", True), ("x", False)):
        body = copy.deepcopy(BASE)
        body["spec"]["template"]["metadata"] = {"annotations": {key: value}}
        if allowed:
            assert apply(BASELINE, body) == body
        else:
            assert refused(BASELINE, body).startswith(f"spec.template.metadata.annotations[{key}]")


def test_restricted_relaxes_the_linux_only_rules_for_windows_pods() -> None:
    body = manifest(os={"name": "windows"}, securityContext={"runAsNonRoot": True})
    assert apply(RESTRICTED, body) == body
    linux = manifest(securityContext={"runAsNonRoot": True})
    assert "allowPrivilegeEscalation" in refused(RESTRICTED, linux)
