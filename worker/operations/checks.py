"""Can this process reach its cluster and do its work there? Each step checked, with the fix.

A worker with no AWS credentials used to start, and every request then failed. These
checks walk the path a request takes, one step at a time, and stop at the first that
fails (the later ones could only fail the same way): AWS credentials found, the
cluster described by EKS, a token minted, the API reached over verified TLS, the
token accepted (the identity the cluster sees), and every verb eksops uses allowed
by RBAC (a ``SelfSubjectAccessReview`` each). Kubeconfig mode checks the kubeconfig
instead of the AWS steps. Used by ``eksops doctor`` and the worker's start-up
preflight (``worker.preflight``); no Celery here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.errors import EksOpsError
from worker.operations.clients import ClusterClient, Clusters, ClusterTarget
from worker.operations.tokens import mint_token
from worker.operations.translate import translate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One step: passed or not, what was seen, and what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the check as JSON-ready data."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Access:
    """One permission eksops needs in the cluster: a verb on a resource of a group."""

    verb: str
    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


#: Every verb eksops uses in the cluster (deploy/rbac.yaml grants exactly these).
REQUIRED_ACCESS: tuple[Access, ...] = (
    Access("get", "", "namespaces"),
    Access("create", "", "namespaces"),
    Access("delete", "", "namespaces"),
    Access("get", "batch", "jobs"),
    Access("create", "batch", "jobs"),
    Access("delete", "batch", "jobs"),
    # The job tracker: one list + watch of Jobs and of their Pods, cluster-wide, and
    # the log of a failed container (also for eksops job-logs).
    Access("list", "batch", "jobs"),
    Access("watch", "batch", "jobs"),
    Access("list", "", "pods"),
    Access("watch", "", "pods"),
    Access("get", "", "pods/log"),
)

_FIXES = {
    "NoCredentials": "give the worker an IAM role (EC2 instance profile) or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "NoRegion": "set EKS_REGION to the cluster's region",
    "ClusterNotFound": "check EKS_CLUSTER_NAME and EKS_REGION (aws eks list-clusters)",
    "Forbidden": "allow eks:DescribeCluster on the cluster to the worker's IAM role "
    "(deploy/iam-policy.json)",
    "Unauthorized": "the AWS credentials are invalid or expired; renew them",
    "TLSError": "the endpoint does not verify against the cluster's CA from DescribeCluster; "
    "check for a TLS-intercepting proxy, or AWS_CA_BUNDLE for a private endpoint",
    "EndpointUnreachable": "the network path to the endpoint is closed: check security "
    "groups, the endpoint's public/private access, proxies",
    "ClusterNotActive": "wait until the cluster is ACTIVE",
    "KubeconfigError": "point KUBECONFIG at a readable kubeconfig (and KUBE_CONTEXT at a "
    "context in it)",
}


def _fix(error: EksOpsError, default: str) -> str:
    return _FIXES.get(error.code, default)


def cluster_checks(clusters: Clusters, target: ClusterTarget, *, mode: str) -> list[Check]:
    """Run the steps in order; the list stops at the first that fails."""
    results: list[Check] = []

    def step(name: str, run: Callable[[], str], default_fix: str) -> bool:
        try:
            detail = run()
        except Exception as exc:
            error = translate(exc)
            results.append(Check(name, False, error.message, _fix(error, default_fix)))
            return False
        results.append(Check(name, True, detail))
        return True

    if mode == "eks":
        session = clusters.session(target)
        described: dict[str, Any] = {}

        def credentials() -> str:
            found = session.get_credentials()
            if found is None:
                raise EksOpsError("no AWS credentials found", code="NoCredentials")
            return f"found ({found.method})"

        def describe() -> str:
            described.update(clusters.describe(target, session))
            return f"{target.name} in {target.region} is ACTIVE at {described['endpoint']}"

        def token() -> str:
            return f"minted ({len(mint_token(session.client('sts'), target.name))} characters)"

        for name, run, fix in (
            ("aws credentials", credentials, _FIXES["NoCredentials"]),
            ("eks describe-cluster", describe, _FIXES["ClusterNotFound"]),
            ("iam token", token, "check the AWS credentials and region"),
        ):
            if not step(name, run, fix):
                return results

    built: list[ClusterClient] = []

    def connect() -> str:
        built.append(clusters.get())
        return "loaded" if mode == "kubeconfig" else "configured with the cluster's CA"

    if not step(
        "kubeconfig" if mode == "kubeconfig" else "kubernetes client",
        connect,
        _FIXES["KubeconfigError"],
    ):
        return results
    cluster = built[0]

    def reach() -> str:
        version = cluster.request("GET", "/version")
        return f"reached over verified TLS: Kubernetes {version.get('gitVersion', '?')}"

    def identity() -> str:
        review = cluster.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        user = (review.get("status") or {}).get("userInfo") or {}
        return f"authenticated as {user.get('username', '?')}"

    if not step("api server", reach, "check the endpoint and the network path to it"):
        return results
    if not step(
        "identity",
        identity,
        "map the worker's IAM role in the cluster: an EKS access entry (deploy/README.md)",
    ):
        return results
    for access in REQUIRED_ACCESS:

        def allowed(access: Access = access) -> str:
            review = cluster.request(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body={
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {
                        "resourceAttributes": {
                            "verb": access.verb,
                            "group": access.group,
                            "resource": access.resource,
                        }
                    },
                },
            )
            status = review.get("status") or {}
            if not status.get("allowed"):
                raise EksOpsError(
                    f"not allowed{': ' + status['reason'] if status.get('reason') else ''}",
                    code="AccessDenied",
                )
            return "allowed"

        step(
            f"rbac: {access}",
            allowed,
            "apply deploy/rbac.yaml and bind its ClusterRole to the group of the worker's "
            "access entry",
        )
    return results
