"""Log lines in the seed's format, tagged with the request they belong to.

Every process of eksops (worker, CLI, gateway, devstack) logs through this module so
that one ``grep "[a1b2c3d4]"`` follows a request across all of them. The boundary:
this module only formats and tags; it never decides what to log. It is pure stdlib
so producers may import it without pulling in cluster clients.

Text format (the seed's ``timestamp | level:8s | module:20s | message [rid]``)::

    2026-01-20 10:30:00.123 | INFO     | jobs                 | START create_job ... [a1b2c3d4]
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "eksops_request_id", default=None
)

# Anything that could authenticate to a cluster or to AWS. Nothing in eksops logs these
# on purpose; this is the net under third-party debug output.
_SECRET_PATTERNS = (
    (re.compile(r"k8s-aws-v1\.[A-Za-z0-9_\-]+"), "k8s-aws-v1.<redacted>"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1<redacted>"),
    (
        re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+"),
        r"\1<redacted>",
    ),
    (re.compile(r"(?i)(aws_secret_access_key['\"]?\s*[:=]\s*['\"]?)[^\s'\",]+"), r"\1<redacted>"),
)

# Libraries whose DEBUG output can include signed requests; they stay at WARNING
# unless the operator explicitly asks for them.
_NOISY_LIBRARIES = ("botocore", "boto3", "urllib3", "kubernetes", "s3transfer", "redis")


def short_id(request_id: str | None) -> str | None:
    """Return the 8-hex-char tag of a request ID (a UUID), as the seed prints it."""
    if not request_id:
        return None
    return request_id.replace("-", "")[:8]


def current_request_id() -> str | None:
    """Return the request ID bound to the running code, if any."""
    return _request_id.get()


@contextlib.contextmanager
def bound_request(request_id: str | None) -> Iterator[None]:
    """Tag every log line emitted inside the block with ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def redact(text: str) -> str:
    """Replace anything that looks like a credential with a placeholder."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _record_request_id(record: logging.LogRecord) -> str | None:
    bound = getattr(record, "request_id", None) or _request_id.get()
    if bound:
        return str(bound)
    # Celery's own task lines ("Task x[id] succeeded in ...") carry the ID in `data`.
    data = getattr(record, "data", None)
    if isinstance(data, Mapping):
        task_id = data.get("id")
        if isinstance(task_id, str):
            return task_id
    return None


class SeedFormatter(logging.Formatter):
    """Format records as the seed does, request tag last (after any traceback)."""

    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        module = record.name.rsplit(".", 1)[-1]
        line = (
            f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d} | "
            f"{record.levelname:<8} | {module:<20} | {message}"
        )
        tag = short_id(_record_request_id(record))
        if tag:
            line = f"{line} [{tag}]"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines that parse fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _record_request_id(record)
        if request_id:
            payload["request_id"] = request_id
            payload["rid"] = short_id(request_id)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Install the eksops handler on the root logger; safe to call more than once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_eksops", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else SeedFormatter())
    handler._eksops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def safe_url(url: str | None) -> str:
    """Return ``url`` with any password replaced, for banners and health output."""
    if not url:
        return "-"
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def log_banner(logger: logging.Logger, title: str, lines: list[str]) -> None:
    """Log a startup banner framed like the seed's."""
    rule = "=" * 80
    logger.info(rule)
    logger.info(title)
    logger.info(rule)
    for line in lines:
        logger.info("%s", line)
    logger.info(rule)


@contextlib.contextmanager
def log_operation(logger: logging.Logger, operation: str, **fields: object) -> Iterator[None]:
    """Log ``START op k=v`` and ``END op success=... duration_ms=...`` around a block."""
    described = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.info("START %s %s", operation, described)
    started = time.perf_counter()
    success = False
    try:
        yield
        success = True
    finally:
        duration_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "END %s success=%s duration_ms=%.1f", operation, str(success).lower(), duration_ms
        )
