"""Injected faults: latency, error statuses and dropped connections, on request.

A rule matches requests by verb, resource, namespace and name (``*`` and trailing
``*`` wildcards; EKS calls have resource ``clusters``), fires with a probability
and optionally only for the next ``times`` matches. Effects:

* ``latency``: fixed ``ms``, or ``distribution`` ``uniform`` (``min_ms``,
  ``max_ms``) or ``normal`` (``mean_ms``, ``stddev_ms``, clipped at 0);
* ``status``: ``code`` 429 (with ``retry_after`` seconds), 500, 502, 503 or 504;
* ``drop``: the connection is closed without an answer.

Latencies of all matching rules add up; the first matching failure wins.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from typing import Any

from kubesim.requestinfo import RequestInfo

EFFECTS = ("latency", "status", "drop")
STATUS_CODES = (429, 500, 502, 503, 504)
_ids = itertools.count(1)
_rng = random.Random()  # noqa: S311 - fault timing, not security


@dataclass
class FaultRule:
    """One rule; field names are the admin API's JSON keys."""

    id: int
    effect: str
    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    probability: float = 1.0
    times: int | None = None
    ms: float = 0.0
    distribution: str = "fixed"
    min_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    stddev_ms: float = 0.0
    code: int = 503
    retry_after: int = 1
    message: str = ""
    hits: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultRule:
        allowed = {f for f in cls.__dataclass_fields__ if f not in ("id", "hits")}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule keys: {', '.join(sorted(unknown))}")
        rule = cls(id=next(_ids), **body)
        if rule.effect not in EFFECTS:
            raise ValueError(f"effect must be one of {', '.join(EFFECTS)}")
        if rule.effect == "status" and rule.code not in STATUS_CODES:
            raise ValueError(f"code must be one of {', '.join(map(str, STATUS_CODES))}")
        if rule.distribution not in ("fixed", "uniform", "normal"):
            raise ValueError("distribution must be fixed, uniform or normal")
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if rule.times is not None and rule.times < 1:
            raise ValueError("times must be at least 1")
        return rule

    def matches(self, info: RequestInfo) -> bool:
        return (
            _match(self.verb, info.verb)
            and _match(self.resource, info.resource_label, info.resource)
            and _match(self.namespace, info.namespace)
            and _match(self.name, info.name)
        )

    def delay(self) -> float:
        """Seconds of latency this rule adds once."""
        if self.distribution == "uniform":
            value = _rng.uniform(self.min_ms, self.max_ms)
        elif self.distribution == "normal":
            value = _rng.gauss(self.mean_ms, self.stddev_ms)
        else:
            value = self.ms
        return max(0.0, value) / 1000.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _match(pattern: str, *values: str) -> bool:
    if pattern in ("*", "any"):
        return True
    if pattern.endswith("*"):
        return any(v.startswith(pattern[:-1]) for v in values)
    return pattern in values


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait ``delay`` seconds, then maybe fail it."""

    delay: float = 0.0
    failure: FaultRule | None = None


class Faults:
    """The active rules, consulted once per request."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, body: dict[str, Any]) -> FaultRule:
        rule = FaultRule.from_json(body)
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, info: RequestInfo) -> Decision:
        if not self.rules:
            return Decision()
        delay, failure = 0.0, None
        for rule in list(self.rules):
            if not rule.matches(info):
                continue
            if failure is not None and rule.effect != "latency":
                continue
            if rule.probability < 1.0 and _rng.random() >= rule.probability:
                continue
            rule.hits += 1
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self.rules.remove(rule)
            if rule.effect == "latency":
                delay += rule.delay()
            else:
                failure = rule
        return Decision(delay, failure)
