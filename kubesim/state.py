"""Everything one running kubesim holds, and how to put it back to the start.

One object owns the cluster (store and controllers), the runtime config, the
authn/authz state, the fault rules and the request counters, so
``POST /_kubesim/reset`` has a single place to act and the server module wires
handlers to one thing. All of it is touched only from the server's event loop, so
no locking is needed.
"""

from __future__ import annotations

import copy
import time
from collections import Counter

from kubesim.auth import TokenVerifier
from kubesim.cluster import Cluster
from kubesim.config import ClusterIdentity, SimConfig
from kubesim.faults import Faults
from kubesim.rbac import Authorizer
from kubesim.store import Store
from kubesim.timers import Timers


class SimState:
    """The cluster's objects plus the knobs tests turn through the admin API."""

    def __init__(self, identity: ClusterIdentity, config: SimConfig) -> None:
        self.identity = identity
        self._initial_config = copy.deepcopy(config)
        self.config = config
        self.created = time.time()
        self.endpoint = ""
        """The HTTPS URL clients reach us at; set once the port is bound."""
        self.timers = Timers()
        self.cluster = Cluster(identity, config, self.timers)
        self.verifier = TokenVerifier(identity.name, config)
        self.authorizer = Authorizer()
        self.faults = Faults()
        self.counters: Counter[tuple[str, str, int]] = Counter()

    @property
    def store(self) -> Store:
        return self.cluster.store

    def reset(self) -> None:
        """Back to the state right after start: objects, rules, counters, config."""
        self.config.update(copy.deepcopy(self._initial_config).as_dict())
        self.cluster.close()
        self.timers.clear()
        self.cluster = Cluster(self.identity, self.config, self.timers)
        self.verifier.reset()
        self.authorizer.rules.clear()
        self.faults.clear()
        self.counters.clear()

    def count(self, verb: str, resource: str, code: int) -> None:
        self.counters[(verb, resource, code)] += 1

    def counters_json(self) -> dict[str, object]:
        rows = [
            {"verb": verb, "resource": resource, "code": code, "count": count}
            for (verb, resource, code), count in sorted(self.counters.items())
        ]
        return {"total": sum(self.counters.values()), "requests": rows}
