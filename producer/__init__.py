"""eksops producers: the Python library, the ``eksops`` CLI and the HTTP gateway.

They validate requests with the worker's contracts, enqueue them on Redis and read
results back; they never import the worker's cluster code (import-linter checks it).
"""

from producer.client import EksOps, Submission
from worker.contracts import Operation, RequestState, RequestStatus

__all__ = ["EksOps", "Operation", "RequestState", "RequestStatus", "Submission"]
