"""Webhooks: each terminal transition POSTed to the submission's ``callback_url``, signed.

A submission (single or bulk) may name a ``callback_url``. Its request's end, and for
a create-job request its Job's end, are written to an outbox, the Redis Stream
``eksops:callbacks``, in the same step that records the transition (the engine's store
pipeline; the tracker's job script). Senders (a thread pool in every worker process,
apart from the task threads: nothing here can slow the queue) read the outbox as one
consumer group, so each entry goes to one sender; an entry is acknowledged only once
the receiver answered 2xx, or its attempts are spent, so a sender killed mid-delivery
leaves it pending and another takes it over (``XAUTOCLAIM``): delivered at least once.
A failed attempt is retried later with backoff (a sorted set of entries due, moved back
into the outbox when due). Each POST carries the transition as JSON, signed with
HMAC-SHA256 over ``<timestamp>.<body>`` with ``CALLBACK_SIGNING_KEY``
(``X-Eksops-Signature: t=<timestamp>,v1=<hex>``), and ``X-Eksops-Delivery`` (the same
for every attempt of one delivery, for receivers to deduplicate). Each delivery's
state (pending, delivered, failed; attempts, last error) is kept in the request
record, where status reads show it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urlsplit

import urllib3

from worker import jobrecords
from worker.errors import InvalidRequest
from worker.records import record_key
from worker.timestamps import now_iso

logger = logging.getLogger(__name__)

OUTBOX_KEY = "eksops:callbacks"
LATER_KEY = "eksops:callbacks:later"
GROUP = "eksops-senders"
OUTBOX_MAX_LENGTH = 100_000
SIGNATURE_HEADER = "X-Eksops-Signature"
DELIVERY_HEADER = "X-Eksops-Delivery"
URL_MAX_LENGTH = 2048
# How long a failed Job's callback may wait for its Pod's exit code and log tail, and
# how often it looks.
_SETTLE_SECONDS = 5.0
_SETTLE_STEP_SECONDS = 0.25


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Return whether callbacks may go to ``host`` (``allowed_hosts`` empty: anywhere)."""
    return not allowed_hosts or any(fnmatch(host, pattern) for pattern in allowed_hosts)


def check_url(url: str, allowed_hosts: tuple[str, ...] = ()) -> str:
    """Return ``url`` if callbacks can be POSTed to it, else raise InvalidRequest."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest("Invalid callback_url: give an http:// or https:// URL")
    if len(url) > URL_MAX_LENGTH:
        raise InvalidRequest(
            f"Invalid callback_url: {len(url)} characters, at most {URL_MAX_LENGTH}"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise InvalidRequest(f"Invalid callback_url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise InvalidRequest(
            f"Invalid callback_url {url!r}: give an http:// or https:// URL with a host"
        )
    if parts.username or parts.password:
        raise InvalidRequest(
            "Invalid callback_url: credentials in the URL would be stored in plain text; "
            "callbacks are signed instead (X-Eksops-Signature)"
        )
    if not host_allowed(host, allowed_hosts):
        raise InvalidRequest(
            f"Invalid callback_url: host {host} is not in CALLBACK_ALLOWED_HOSTS "
            f"({', '.join(allowed_hosts)})"
        )
    return url


def enqueue(
    pipe: Any, *, kind: str, request_id: str, url: str, details: dict[str, Any] | None = None
) -> None:
    """Queue the outbox entry of a terminal transition, and its pending state, on ``pipe``."""
    entry = {"kind": kind, "request_id": request_id, "url": url, "attempts": "0"}
    if details is not None:
        entry["details"] = json.dumps(details)
    pipe.xadd(OUTBOX_KEY, entry, maxlen=OUTBOX_MAX_LENGTH, approximate=True)
    pipe.hset(
        record_key(request_id), f"callback:{kind}", json.dumps({"state": "pending", "attempts": 0})
    )


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """Return the signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(key: bytes, header: str, body: bytes, *, tolerance_seconds: float = 300) -> bool:
    """Return whether ``header`` signs ``body`` with ``key``, recently (for receivers)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(key, timestamp, body), header)


@dataclass(frozen=True)
class SenderSettings:
    """How callbacks are sent; durations in seconds."""

    signing_key: bytes | None
    allowed_hosts: tuple[str, ...] = ()
    max_attempts: int = 8
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 10.0
    threads: int = 4

    @property
    def claim_idle_seconds(self) -> float:
        """How long an entry read and not acknowledged waits before another sender takes
        it: twice the longest a delivery can take; a live sender also marks the entries it
        holds as its own every quarter of this, however long they wait for a thread."""
        return max(5.0, 2 * (self.connect_timeout_seconds + self.read_timeout_seconds))


# KEYS: the later set, the outbox. ARGV: now (ms), how many. Moves due entries back.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, raw in ipairs(due) do
  local entry = cjson.decode(raw)
  local fields = {}
  for name, value in pairs(entry) do fields[#fields + 1] = name; fields[#fields + 1] = value end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('ZREM', KEYS[1], raw)
end
return #due
"""


class Sender:
    """Delivers the outbox's entries from this process, a few at a time."""

    def __init__(self, redis: Any, settings: SenderSettings) -> None:
        self._redis = redis
        self.settings = settings
        self._consumer = f"{socket.gethostname()}.{id(self):x}"
        self._pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="eksops-callback")
        self._http = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(
                connect=settings.connect_timeout_seconds, read=settings.read_timeout_seconds
            ),
        )
        self._move_due = redis.register_script(_MOVE_DUE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Semaphore(settings.threads * 2)
        # Entries this sender read and has not finished with (queued for a thread, or
        # being delivered): their idle time is reset every so often, so that another
        # sender's takeover only ever finds the entries of a sender gone silent.
        self._held: set[str] = set()
        self._held_lock = threading.Lock()

    def start(self) -> None:
        """Start reading the outbox in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="eksops-callbacks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; deliveries under way finish (or are taken over later)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def _refresh_every(self) -> float:
        """How often the entries this sender holds are marked as still its own."""
        return self.settings.claim_idle_seconds / 4

    def _run(self) -> None:
        last_claim = last_refresh = 0.0
        while not self._stop.is_set():
            try:
                self._ensure_group()
                self._move_due(keys=[LATER_KEY, OUTBOX_KEY], args=[int(time.time() * 1000), 100])
                if time.monotonic() - last_refresh > self._refresh_every:
                    self._refresh_held()
                    last_refresh = time.monotonic()
                if time.monotonic() - last_claim > self.settings.claim_idle_seconds / 2:
                    self._claim_abandoned()
                    last_claim = time.monotonic()
                reply = self._redis.xreadgroup(
                    GROUP, self._consumer, {OUTBOX_KEY: ">"}, count=20, block=1000
                )
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        self._submit(entry_id, fields)
            except Exception as exc:  # Redis away: wait and read again
                logger.warning("Callback outbox unreadable (%s); retrying", exc)
                self._stop.wait(1.0)

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(OUTBOX_KEY, GROUP, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _claim_abandoned(self) -> None:
        """Take over entries a dead sender read and never acknowledged."""
        idle_ms = int(self.settings.claim_idle_seconds * 1000)
        _next, claimed, *_ = self._redis.xautoclaim(
            OUTBOX_KEY, GROUP, self._consumer, min_idle_time=idle_ms, count=50
        )
        for entry_id, fields in claimed:
            if fields:
                logger.info("Taking over an undelivered callback of a sender gone silent")
                self._submit(entry_id, fields)

    def _refresh_held(self) -> None:
        """Reset the idle time of the entries this sender holds (a claim by itself)."""
        with self._held_lock:
            held = sorted(self._held)
        if held:
            self._redis.xclaim(
                OUTBOX_KEY, GROUP, self._consumer, min_idle_time=0, message_ids=held, justid=True
            )

    def _submit(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        entry = {_text(k): _text(v) for k, v in fields.items()}
        held = _text(entry_id)
        with self._held_lock:
            self._held.add(held)
        # Every thread busy (a slow receiver): the entries waiting for one stay ours.
        while not self._busy.acquire(timeout=self._refresh_every):
            self._refresh_held()
        future = self._pool.submit(self._deliver, held, entry)

        def done(_: object) -> None:
            with self._held_lock:
                self._held.discard(held)
            self._busy.release()

        future.add_done_callback(done)

    def _deliver(self, entry_id: str, entry: dict[str, str]) -> None:
        attempts = int(entry.get("attempts", "0")) + 1
        delivery = entry.get("delivery") or entry_id
        state_field = f"callback:{entry['kind']}"
        if not self._settled(entry, delivery):
            pipe = self._redis.pipeline(transaction=False)
            later = {**entry, "delivery": delivery}
            due = int((time.time() + _SETTLE_STEP_SECONDS) * 1000)
            pipe.zadd(LATER_KEY, {json.dumps(later, sort_keys=True): due})
            pipe.xack(OUTBOX_KEY, GROUP, entry_id)
            pipe.xdel(OUTBOX_KEY, entry_id)
            pipe.execute()
            return
        try:
            error = self._post(entry, delivery)
        except Exception as exc:  # anything: this attempt failed
            error = f"{type(exc).__name__}: {exc}"
        state: dict[str, Any] = {"state": "delivered", "attempts": attempts, "at": now_iso()}
        pipe = self._redis.pipeline(transaction=False)
        if error is not None:
            if attempts >= self.settings.max_attempts or error.startswith("refused:"):
                state = {"state": "failed", "attempts": attempts, "error": error, "at": now_iso()}
                logger.warning("Callback to %s failed for good: %s", entry["url"], error)
            else:
                delay = min(
                    self.settings.backoff_max_seconds,
                    self.settings.backoff_seconds * 2 ** (attempts - 1),
                )
                delay *= 0.5 + random.random() / 2  # noqa: S311 - spreading, not security
                retry = {**entry, "attempts": str(attempts), "delivery": delivery}
                pipe.zadd(
                    LATER_KEY,
                    {json.dumps(retry, sort_keys=True): int((time.time() + delay) * 1000)},
                )
                state = {"state": "pending", "attempts": attempts, "error": error, "at": now_iso()}
                logger.info(
                    "Callback to %s failed (%s); again in %.1fs", entry["url"], error, delay
                )
        pipe.xack(OUTBOX_KEY, GROUP, entry_id)
        pipe.xdel(OUTBOX_KEY, entry_id)
        pipe.hset(record_key(entry["request_id"]), state_field, json.dumps(state))
        pipe.execute()

    def _settled(self, entry: dict[str, str], delivery: str) -> bool:
        """Whether a failed Job's record has what its callback should say: why it failed.

        The tracker follows Jobs and Pods in two watches, so a Job's end can be recorded
        a moment before its failed Pod's exit code and log tail; the callback waits for
        them, at most :data:`_SETTLE_SECONDS` after the end.
        """
        if entry["kind"] != "job" or not entry.get("job"):
            return True
        since_ms = int(delivery.split("-", 1)[0]) if delivery[:1].isdigit() else 0
        if time.time() * 1000 - since_ms > _SETTLE_SECONDS * 1000:
            return True
        record = jobrecords.read_job(self._redis, entry["job"])
        return record is None or not record.ended or record.settled

    def _post(self, entry: dict[str, str], delivery: str) -> str | None:
        """POST one transition; None when the receiver took it, else what went wrong."""
        url = entry["url"]
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, self.settings.allowed_hosts):
            return f"refused: {host} is not in CALLBACK_ALLOWED_HOSTS"
        if self.settings.signing_key is None:
            return "refused: CALLBACK_SIGNING_KEY is not set on the workers"
        body = json.dumps(self._payload(entry, delivery), sort_keys=True).encode()
        response = self._http.request(
            "POST",
            url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "eksops-callbacks",
                SIGNATURE_HEADER: sign(self.settings.signing_key, int(time.time()), body),
                DELIVERY_HEADER: delivery,
            },
            redirect=False,
            preload_content=True,
        )
        if 200 <= response.status < 300:
            return None
        return f"HTTP {response.status}"

    def _payload(self, entry: dict[str, str], delivery: str) -> dict[str, Any]:
        """The transition: a request's outcome, or a Job's end as its record says it."""
        payload: dict[str, Any] = {
            "kind": entry["kind"],
            "request_id": entry["request_id"],
            "delivery": delivery,
            **json.loads(entry.get("details") or "{}"),
        }
        if entry["kind"] == "job" and entry.get("job"):
            record = jobrecords.read_job(self._redis, entry["job"])
            if record is not None:
                payload["job"] = {**record.status_body(), "cluster": record.cluster}
        return payload


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
