"""Settings of one kubesim instance: fixed identity plus knobs tests turn at runtime.

``SimConfig`` is what the CLI flags, ``Simulator(...)`` keyword arguments and
``PUT /_kubesim/config`` all set; its field names are the admin API's JSON keys.
Identity constants (the dummy AWS key pair, the account) live here too so the env
file, the token verifier and the EKS API agree on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ACCOUNT_ID = "123456789012"
ACCESS_KEY_ID = "AKIAKUBESIMEXAMPLE"
SECRET_ACCESS_KEY = "kubesim/dummy/secret/key/not/for/real/use00"  # noqa: S105 (fixed dummy)
DEFAULT_CALLER_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/eksops-worker/i-0123456789abcdef0"
OUTCOMES = ("succeed", "fail", "hang")
"""The outcomes ``default_outcome`` may take (the annotation knows more, see ``podplan``)."""


@dataclass
class SimConfig:
    """Runtime-adjustable behaviour; every duration is in seconds unless named ``_ms``."""

    job_duration: float = 2.0
    """Seconds from a Job's start until it succeeds or fails (annotation overrides)."""
    default_outcome: str = "succeed"
    """Outcome of Jobs without the outcome annotation: succeed, fail or hang."""
    namespace_termination: float = 1.0
    """Seconds a deleted namespace stays Terminating before it disappears."""
    pod_termination: float = 0.3
    """Seconds running pods take to go away after a Foreground delete of their Job."""
    token_max_age: float = 900.0
    """Bearer tokens whose X-Amz-Date is older than this are rejected with 401."""
    latency_ms: float = 0.0
    """Fixed delay added to every EKS and Kubernetes API request."""
    caller_arn: str = DEFAULT_CALLER_ARN
    """Identity the dummy access key maps to; appears in Forbidden messages."""
    pod_startup: float = 1.0
    """Seconds from a Pod's scheduling to its container running (capped at a quarter of
    the attempt's run time), spent in ``ContainerCreating``."""
    event_ttl: float = 3600.0
    """Events expire this long after their last update (kube-apiserver ``--event-ttl``)."""
    event_limit: int = 20_000
    """At most this many Events are kept; the oldest go first."""
    watch_timeout: float = 1800.0
    """Server-side end of a watch without ``timeoutSeconds`` (``--min-request-timeout``)."""
    bookmark_interval: float = 60.0
    """Seconds between BOOKMARK events on watches that allow them."""

    def update(self, changes: dict[str, Any]) -> None:
        """Apply admin changes, refusing unknown keys and bad values as a whole."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        staged = asdict(self) | changes
        for name, value in changes.items():
            if known[name].type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} must be a positive integer")
            elif known[name].type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                staged[name] = float(value)
            elif not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
        if staged["default_outcome"] not in OUTCOMES:
            raise ValueError(f"default_outcome must be one of {', '.join(OUTCOMES)}")
        for name, value in staged.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterIdentity:
    """What DescribeCluster reports and what tokens must be minted for."""

    name: str
    region: str
    kubernetes_version: str = "1.31"
    patch_version: str = "1.31.4"
    platform_version: str = "eks.19"

    @property
    def arn(self) -> str:
        return f"arn:aws:eks:{self.region}:{ACCOUNT_ID}:cluster/{self.name}"

    @property
    def git_version(self) -> str:
        return f"v{self.patch_version}-eks-2d5f260"
