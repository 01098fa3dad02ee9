"""The operations eksops runs against a cluster, shared by every task.

Plain synchronous functions with keyword-only arguments; the cluster client is passed
in. Nothing here knows about Celery (an import-linter contract checks it), so the same
functions serve tasks, benchmarks and any future caller.
"""

from worker.operations.clients import ClusterClient, Clusters, ClusterTarget, warm_up
from worker.operations.jobs import create_job, delete_job, get_job_status, job_state
from worker.operations.namespaces import create_namespace, delete_namespace

__all__ = [
    "ClusterClient",
    "ClusterTarget",
    "Clusters",
    "create_job",
    "create_namespace",
    "delete_job",
    "delete_namespace",
    "get_job_status",
    "job_state",
    "warm_up",
]
