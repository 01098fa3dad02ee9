"""One simulated cluster: the store and the controllers that act on it.

Everything that changes objects without a request lives here, wired to one store
and one timer heap: the event recorder, the kubelet (with the scheduler), the Job
controller (with TTL-after-finished), the garbage collector and the namespace
controller, plus the hub of open watches. ``SimState.reset`` replaces the whole
``Cluster``, so a reset can never leave a controller pointing at old objects.
"""

from __future__ import annotations

import time

from kubesim import namespaces, podplan
from kubesim.config import ClusterIdentity, SimConfig
from kubesim.events import Recorder
from kubesim.gc import GarbageCollector, NamespaceController
from kubesim.jobcontroller import JobController
from kubesim.kubelet import Kubelet
from kubesim.store import JSON, Store
from kubesim.timers import Timers
from kubesim.watch import WatchHub


class Cluster:
    """The objects of one cluster and the loops that keep them moving."""

    def __init__(
        self,
        identity: ClusterIdentity,
        config: SimConfig,
        timers: Timers,
        *,
        seed: bool = True,
        history: int = 50_000,
    ) -> None:
        self.identity, self.config, self.timers = identity, config, timers
        self.store = Store(history)
        self.watches = WatchHub(self.store)
        self.recorder = Recorder(
            self.store, config, timers, watched=lambda: bool(self.watches.by_table.get("events"))
        )
        self.kubelet = Kubelet(self.store, config, timers, self.recorder, identity)
        self.jobs = JobController(self.store, config, timers, self.recorder, self.kubelet)
        self.gc = GarbageCollector(self.store, config, timers, self.kubelet, self.jobs.pods_of)
        self.namespaces = NamespaceController(self.store, config, timers, self.kubelet)
        if seed:
            namespaces.seed(self.store, time.time())

    def admit_pod(self, pod: JSON, now: float) -> None:
        """A Pod created through the API: the kubelet runs it by its own annotations."""
        self.kubelet.admit(pod, podplan.plan_for_pod(pod, self.config), now)

    def close(self) -> None:
        self.watches.close_all()
