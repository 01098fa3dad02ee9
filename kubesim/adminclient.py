"""A small synchronous client for the admin API, on the standard library only.

Tests (ours and other suites') steer kubesim with it; it trusts exactly the
simulator's CA, like every other client, and raises ``AdminError`` with the
server's explanation when a request is refused.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

JSON = dict[str, Any]


class AdminError(Exception):
    """Raised when the admin API answers with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class AdminClient:
    """Methods map one-to-one onto ``/_kubesim/`` endpoints (see kubesim/README.md)."""

    def __init__(self, url: str, ca_pem_path: str | Path, timeout: float = 10.0) -> None:
        self._base = url.rstrip("/") + "/_kubesim"
        self._context = ssl.create_default_context(cafile=str(ca_pem_path))
        self._timeout = timeout

    def _call(self, method: str, path: str, body: JSON | None = None) -> JSON:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._base + path, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            opened = urllib.request.urlopen(  # noqa: S310 - https URL built above
                request, timeout=self._timeout, context=self._context
            )
            with opened as resp:
                result: JSON = json.loads(resp.read() or b"{}")
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("error", detail)
            raise AdminError(exc.code, detail) from exc

    def healthz(self) -> JSON:
        return self._call("GET", "/healthz")

    def reset(self) -> JSON:
        """Back to the initial state: objects, config, rules, tokens, counters."""
        return self._call("POST", "/reset")

    def counters(self) -> JSON:
        return self._call("GET", "/counters")

    def clear_counters(self) -> JSON:
        return self._call("DELETE", "/counters")

    def count(self, verb: str, resource: str, code: int | None = None) -> int:
        """How many requests matched (convenience over ``counters()``)."""
        rows = self.counters()["requests"]
        return sum(
            r["count"]
            for r in rows
            if r["verb"] == verb
            and r["resource"] == resource
            and (code is None or r["code"] == code)
        )

    def config(self) -> JSON:
        return self._call("GET", "/config")

    def configure(self, **changes: Any) -> JSON:
        """Change runtime settings, e.g. ``configure(job_duration=0.2)``."""
        return self._call("PATCH", "/config", changes)

    def add_fault(self, effect: str, **rule: Any) -> JSON:
        """Add a fault rule; returns it with its ``id`` (see faults in the README)."""
        return self._call("POST", "/faults", {"effect": effect, **rule})

    def faults(self) -> list[JSON]:
        rules: list[JSON] = self._call("GET", "/faults")["rules"]
        return rules

    def remove_fault(self, rule_id: int) -> JSON:
        return self._call("DELETE", f"/faults/{rule_id}")

    def clear_faults(self) -> JSON:
        return self._call("DELETE", "/faults")

    def deny(self, verb: str = "*", resource: str = "*", namespace: str = "*", **rule: Any) -> JSON:
        """Make matching requests answer 403 Forbidden; returns the rule with its ``id``."""
        body = {"verb": verb, "resource": resource, "namespace": namespace, **rule}
        return self._call("POST", "/rbac/deny", body)

    def denies(self) -> list[JSON]:
        rules: list[JSON] = self._call("GET", "/rbac/deny")["rules"]
        return rules

    def remove_deny(self, rule_id: int) -> JSON:
        return self._call("DELETE", f"/rbac/deny/{rule_id}")

    def clear_denies(self) -> JSON:
        return self._call("DELETE", "/rbac/deny")

    def tokens(self) -> JSON:
        return self._call("GET", "/tokens")

    def revoke_tokens(self) -> JSON:
        """Reject every token minted before now (clients must mint a new one)."""
        return self._call("POST", "/tokens/revoke")

    def reject_all_tokens(self, enabled: bool = True) -> JSON:
        return self._call("PUT", "/tokens/reject-all", {"enabled": enabled})

    def open_watches(self) -> int:
        """How many watch streams are open now."""
        return int(self._call("GET", "/watches")["open"])

    def close_watches(self) -> int:
        """End every open watch now (as an apiserver restart does); returns how many."""
        return int(self._call("DELETE", "/watches")["closed"])

    def history(self) -> JSON:
        """``resourceVersion``, the oldest one a watch may resume from, entries held."""
        return self._call("GET", "/history")

    def compact_history(self) -> int:
        """Forget the change history: resuming from an older resourceVersion gets 410."""
        return int(self._call("POST", "/history/compact")["compacted"])
