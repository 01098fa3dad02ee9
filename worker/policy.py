"""Job policy: what a tenant's Jobs may do, checked before anything is enqueued.

A :class:`JobPolicy` (per tenant, or the keys file's default) limits the images a Job
may pull (registries), its Pod Security Standards level (``baseline`` or
``restricted``, the rules of upstream's pod-security-admission, restated here), its
resources (requests and limits required, maxima), its ``activeDeadlineSeconds``, its
service account, and gives a default ``ttlSecondsAfterFinished``. :func:`apply`
returns the manifest with the policy's defaults filled in, or raises
:class:`~worker.errors.PolicyViolation` whose message names the field, e.g.
``spec.template.spec.containers[0].securityContext.privileged``.

Pure: producers run it before enqueue (single and bulk items alike), and a worker can
run the same function again. It reads the manifest as the contracts validated it.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.errors import PolicyViolation


class PodSecurity(enum.StrEnum):
    """The Pod Security Standards levels (privileged: no checks)."""

    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


# Upstream's baseline: capabilities a container may add.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Upstream's baseline: the sysctls known to be namespaced and safe.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
# Upstream's restricted: the only volume types allowed.
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
TEMPLATE = "spec.template.spec"


class JobPolicy(BaseModel):
    """What a Job may do; ``None`` (left out) leaves that aspect free."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Image prefixes such as "123456789012.dkr.ecr.eu-west-1.amazonaws.com/" or
    # "ghcr.io/team-a/": every container's image must start with one of them.
    registries: tuple[str, ...] | None = None
    pod_security: PodSecurity = PodSecurity.PRIVILEGED
    # Every container must set requests and limits for each of these (cpu, memory).
    require_resources: tuple[str, ...] = ()
    # Largest limit (or request) any container may ask for, by resource: {"cpu": "4"}.
    max_resources: dict[str, str] = Field(default_factory=dict)
    max_active_deadline_seconds: int | None = Field(default=None, ge=1)
    default_ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    service_accounts: tuple[str, ...] | None = None

    @field_validator("max_resources")
    @classmethod
    def _check_quantities(cls, maxima: dict[str, str]) -> dict[str, str]:
        for resource, value in maxima.items():
            try:
                parse_quantity(value, field=f"max_resources.{resource}")
            except PolicyViolation as exc:
                raise ValueError(exc.message) from None
        return maxima


def parse_quantity(value: object, *, field: str) -> float:
    """Return a Kubernetes quantity (``500m``, ``2Gi``, ``1e3`` not accepted) as a number."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise PolicyViolation(
            f"{field}: {value!r} is not a Kubernetes quantity such as 500m or 2Gi"
        )
    try:
        return float(match.group(1)) * _SUFFIX[match.group(2)]
    except ValueError:
        raise PolicyViolation(f"{field}: {value!r} is not a Kubernetes quantity") from None


def apply(policy: JobPolicy | None, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``manifest`` with the policy's defaults, or raise PolicyViolation naming the field."""
    body = copy.deepcopy(dict(manifest))
    if policy is None:
        return body
    spec = body.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    deadline = spec.get("activeDeadlineSeconds")
    limit = policy.max_active_deadline_seconds
    if limit is not None:
        if deadline is None:
            raise PolicyViolation(f"spec.activeDeadlineSeconds: required (at most {limit})")
        if deadline > limit:
            raise PolicyViolation(f"spec.activeDeadlineSeconds: {deadline} is over {limit}")
    ttl = policy.default_ttl_seconds_after_finished
    if ttl is not None and "ttlSecondsAfterFinished" not in spec:
        body["spec"]["ttlSecondsAfterFinished"] = ttl
    _check_service_account(policy, pod)
    for path, container in _containers(pod):
        _check_image(policy, path, container)
        _check_resources(policy, path, container)
    if policy.pod_security is not PodSecurity.PRIVILEGED:
        _check_baseline(body, pod)
    if policy.pod_security is PodSecurity.RESTRICTED:
        _check_restricted(pod)
    return body


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in _CONTAINER_KINDS:
        for index, container in enumerate(pod.get(kind) or []):
            yield f"{TEMPLATE}.{kind}[{index}]", container


def _check_service_account(policy: JobPolicy, pod: Mapping[str, Any]) -> None:
    allowed = policy.service_accounts
    if allowed is None:
        return
    account = pod.get("serviceAccountName") or pod.get("serviceAccount") or "default"
    if account not in allowed:
        raise PolicyViolation(
            f"{TEMPLATE}.serviceAccountName: {account!r} is not allowed "
            f"(allowed: {', '.join(allowed)})"
        )


def _check_image(policy: JobPolicy, path: str, container: Mapping[str, Any]) -> None:
    registries = policy.registries
    if registries is None:
        return
    image = str(container.get("image") or "")
    if not any(image.startswith(prefix) for prefix in registries):
        raise PolicyViolation(
            f"{path}.image: {image!r} is not from an allowed registry "
            f"(allowed: {', '.join(registries)})"
        )


def _check_resources(policy: JobPolicy, path: str, container: Mapping[str, Any]) -> None:
    resources = container.get("resources") or {}
    for resource in policy.require_resources:
        for kind in ("requests", "limits"):
            if resource not in (resources.get(kind) or {}):
                raise PolicyViolation(f"{path}.resources.{kind}.{resource}: required")
    for resource, maximum in policy.max_resources.items():
        ceiling = parse_quantity(maximum, field=f"max_resources.{resource}")
        for kind in ("requests", "limits"):
            value = (resources.get(kind) or {}).get(resource)
            field = f"{path}.resources.{kind}.{resource}"
            if value is not None and parse_quantity(value, field=field) > ceiling:
                raise PolicyViolation(f"{field}: {value} is over the maximum {maximum}")


def _security(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("securityContext") or {})


def _check_baseline(body: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            raise PolicyViolation(f"{TEMPLATE}.{flag}: must not be true (Pod Security baseline)")
    pod_security = _security(pod)
    for index, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            raise PolicyViolation(
                f"{TEMPLATE}.volumes[{index}].hostPath: not allowed (Pod Security baseline)"
            )
    _check_seccomp(f"{TEMPLATE}.securityContext", pod_security, required=False)
    _check_selinux(f"{TEMPLATE}.securityContext", pod_security)
    _check_apparmor(f"{TEMPLATE}.securityContext", pod_security)
    if (pod_security.get("windowsOptions") or {}).get("hostProcess"):
        raise PolicyViolation(
            f"{TEMPLATE}.securityContext.windowsOptions.hostProcess: must not be true "
            "(Pod Security baseline)"
        )
    for index, sysctl in enumerate(pod_security.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            raise PolicyViolation(
                f"{TEMPLATE}.securityContext.sysctls[{index}].name: {sysctl.get('name')!r} "
                "is not a safe sysctl (Pod Security baseline)"
            )
    annotations = ((pod_template(body)).get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        allowed = value == "runtime/default" or str(value).startswith("localhost/")
        if key.startswith(_APPARMOR_ANNOTATION) and not allowed:
            raise PolicyViolation(
                f"spec.template.metadata.annotations[{key}]: {value!r} is not allowed; "
                "runtime/default or localhost/* (Pod Security baseline)"
            )
    for path, container in _containers(pod):
        _check_baseline_container(path, container)


def _check_baseline_container(path: str, container: Mapping[str, Any]) -> None:
    security = _security(container)
    where = f"{path}.securityContext"
    if security.get("privileged"):
        raise PolicyViolation(f"{where}.privileged: must not be true (Pod Security baseline)")
    if (security.get("windowsOptions") or {}).get("hostProcess"):
        raise PolicyViolation(
            f"{where}.windowsOptions.hostProcess: must not be true (Pod Security baseline)"
        )
    added = (security.get("capabilities") or {}).get("add") or []
    for cap in added:
        if cap not in BASELINE_CAPABILITIES:
            raise PolicyViolation(
                f"{where}.capabilities.add: {cap} is not allowed (Pod Security baseline)"
            )
    for index, port in enumerate(container.get("ports") or []):
        if port.get("hostPort"):
            raise PolicyViolation(
                f"{path}.ports[{index}].hostPort: not allowed (Pod Security baseline)"
            )
    if security.get("procMount") not in (None, "Default"):
        raise PolicyViolation(f"{where}.procMount: must be Default (Pod Security baseline)")
    _check_probe_hosts(path, container)
    _check_seccomp(where, security, required=False)
    _check_selinux(where, security)
    _check_apparmor(where, security)


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")


def _check_probe_hosts(path: str, container: Mapping[str, Any]) -> None:
    """Probes and lifecycle hooks may not name a host (upstream baseline, v1.34+)."""
    handlers = [(f"{path}.{probe}", container.get(probe)) for probe in _PROBES]
    lifecycle = container.get("lifecycle") or {}
    handlers += [(f"{path}.lifecycle.{hook}", lifecycle.get(hook)) for hook in _HOOKS]
    for where, handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            if ((handler or {}).get(action) or {}).get("host"):
                raise PolicyViolation(
                    f"{where}.{action}.host: must not be set (Pod Security baseline)"
                )


def pod_template(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Job's pod template (empty if it has none)."""
    return dict(((body.get("spec") or {}).get("template")) or {})


def _check_seccomp(where: str, security: Mapping[str, Any], *, required: bool) -> None:
    kind = (security.get("seccompProfile") or {}).get("type")
    if kind == "Unconfined":
        raise PolicyViolation(
            f"{where}.seccompProfile.type: Unconfined is not allowed (Pod Security baseline)"
        )
    if required and kind not in _SECCOMP_ALLOWED:
        raise PolicyViolation(
            f"{where}.seccompProfile.type: must be RuntimeDefault or Localhost "
            "(Pod Security restricted)"
        )


def _check_selinux(where: str, security: Mapping[str, Any]) -> None:
    options = security.get("seLinuxOptions") or {}
    if options.get("type", "") not in SELINUX_TYPES:
        raise PolicyViolation(
            f"{where}.seLinuxOptions.type: {options['type']!r} is not allowed "
            "(Pod Security baseline)"
        )
    for name in ("user", "role"):
        if options.get(name):
            raise PolicyViolation(
                f"{where}.seLinuxOptions.{name}: must not be set (Pod Security baseline)"
            )


def _check_apparmor(where: str, security: Mapping[str, Any]) -> None:
    kind = (security.get("appArmorProfile") or {}).get("type")
    if kind == "Unconfined":
        raise PolicyViolation(
            f"{where}.appArmorProfile.type: Unconfined is not allowed (Pod Security baseline)"
        )


def _check_restricted(pod: Mapping[str, Any]) -> None:
    for index, volume in enumerate(pod.get("volumes") or []):
        kinds = set(volume) - {"name"}
        for kind in sorted(kinds - RESTRICTED_VOLUMES):
            raise PolicyViolation(
                f"{TEMPLATE}.volumes[{index}].{kind}: volume type not allowed "
                "(Pod Security restricted)"
            )
    pod_security = _security(pod)
    if pod_security.get("runAsUser") == 0:
        raise PolicyViolation(
            f"{TEMPLATE}.securityContext.runAsUser: must not be 0 (Pod Security restricted)"
        )
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type") in _SECCOMP_ALLOWED
    # Upstream relaxes privilege escalation, seccomp and capabilities for Windows pods.
    linux = (pod.get("os") or {}).get("name") != "windows"
    for path, container in _containers(pod):
        security = _security(container)
        where = f"{path}.securityContext"
        if linux and security.get("allowPrivilegeEscalation") is not False:
            raise PolicyViolation(
                f"{where}.allowPrivilegeEscalation: must be false (Pod Security restricted)"
            )
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if non_root is not True:
            raise PolicyViolation(
                f"{where}.runAsNonRoot: must be true, here or in "
                f"{TEMPLATE}.securityContext (Pod Security restricted)"
            )
        if security.get("runAsUser") == 0:
            raise PolicyViolation(f"{where}.runAsUser: must not be 0 (Pod Security restricted)")
        if linux and not pod_seccomp:
            _check_seccomp(where, security, required=True)
        if not linux:
            continue
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            raise PolicyViolation(
                f"{where}.capabilities.drop: must include ALL (Pod Security restricted)"
            )
        for cap in capabilities.get("add") or []:
            if cap not in RESTRICTED_CAPABILITIES:
                raise PolicyViolation(
                    f"{where}.capabilities.add: {cap} is not allowed; only NET_BIND_SERVICE "
                    "(Pod Security restricted)"
                )
