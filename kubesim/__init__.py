"""kubesim: a local AWS EKS + Kubernetes API simulator for tests, demos and benchmarks.

Serves, over HTTPS with its own CA, the EKS ``DescribeCluster`` call, a Kubernetes
API subset (discovery, namespaces, batch/v1 jobs) that authenticates EKS-style
bearer tokens and answers with the real apiserver's Status bodies, and an admin
API under ``/_kubesim/`` for faults, RBAC denials and runtime settings.
"""

from kubesim.adminclient import AdminClient, AdminError
from kubesim.podplan import DURATION_ANNOTATION, OUTCOME_ANNOTATION
from kubesim.simulator import Simulator

__all__ = ["DURATION_ANNOTATION", "OUTCOME_ANNOTATION", "AdminClient", "AdminError", "Simulator"]
