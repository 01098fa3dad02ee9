"""kubesim: a local AWS EKS + Kubernetes API simulator for tests, demos and benchmarks.

Serves, over HTTPS with its own CA, the EKS ``DescribeCluster`` call, a Kubernetes
API (namespaces, jobs, pods, events; watch, patch, apply, logs, tables, OpenAPI)
that authenticates EKS-style bearer tokens and answers with the real apiserver's
Status bodies, simulated controllers (job, kubelet, garbage collector, namespace,
TTL), and an admin API under ``/_kubesim/`` for faults, RBAC denials and settings.

Names are imported lazily, so ``python -m kubesim.credential`` (the kubeconfig exec
plugin, run for every kubectl command) starts without loading the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesim.adminclient import AdminClient, AdminError
    from kubesim.podplan import DURATION_ANNOTATION, OUTCOME_ANNOTATION
    from kubesim.simulator import Simulator

__all__ = ["DURATION_ANNOTATION", "OUTCOME_ANNOTATION", "AdminClient", "AdminError", "Simulator"]
_WHERE = {
    "AdminClient": "kubesim.adminclient",
    "AdminError": "kubesim.adminclient",
    "DURATION_ANNOTATION": "kubesim.podplan",
    "OUTCOME_ANNOTATION": "kubesim.podplan",
    "Simulator": "kubesim.simulator",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kubesim' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module), name)
