"""Log lines follow the seed's format and carry the request tag; secrets never show."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from worker.logs import JsonFormatter, SeedFormatter, bound_request, log_operation, redact, safe_url

SEED_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| (?P<level>[A-Z]+ *) \| (?P<module>.{20}) \| (?P<message>.*?)(?: \[(?P<rid>[0-9a-f]{8})\])?$",
    re.S,
)
RID = "a1b2c3d4-0000-4000-8000-000000000000"


@pytest.fixture
def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SeedFormatter())
    logger = logging.getLogger("worker.operations.jobs")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers = []
    logger.propagate = True


def test_a_line_has_the_seed_layout_and_the_request_tag(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    with bound_request(RID):
        logger.info("START create_job job=%s namespace=%s", "my-job", "default")
    line = stream.getvalue().rstrip("\n")
    match = SEED_LINE.match(line)
    assert match, line
    assert match["level"] == "INFO    "
    assert match["module"] == "jobs".ljust(20)
    assert match["message"] == "START create_job job=my-job namespace=default"
    assert match["rid"] == "a1b2c3d4"


def test_lines_outside_a_request_have_no_tag(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.warning("no request here")
    assert stream.getvalue().rstrip().endswith("| no request here")


def test_the_tag_follows_a_traceback_as_in_the_seed(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    with bound_request(RID):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("Failed")
    text = stream.getvalue().rstrip("\n")
    assert "Traceback (most recent call last)" in text
    assert text.endswith("RuntimeError: boom [a1b2c3d4]")


def test_celery_task_lines_are_tagged_from_their_data(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info(
        "Task %(name)s[%(id)s] received",
        {"name": "eksops.create_job", "id": RID},
        extra={"data": {"id": RID}},
    )
    assert stream.getvalue().rstrip().endswith("received [a1b2c3d4]")


def test_start_and_end_lines_carry_duration(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    with (
        pytest.raises(ValueError, match="x"),
        log_operation(logger, "delete_job", job="j", namespace="n"),
    ):
        raise ValueError("x")
    lines = stream.getvalue().splitlines()
    assert "| START delete_job job=j namespace=n" in lines[0]
    assert re.search(r"\| END delete_job success=false duration_ms=\d+\.\d$", lines[1])


def test_tokens_and_signed_urls_are_redacted() -> None:
    text = (
        "Authorization: Bearer k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9u "
        "https://sts.amazonaws.com/?X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=deadbeef "
        "aws_secret_access_key=abc123"
    )
    cleaned = redact(text)
    for secret in ("aHR0cHM6Ly9", "AKIA%2F20260101", "deadbeef", "abc123"):
        assert secret not in cleaned


def test_json_lines_carry_the_full_request_id(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.handlers[0].setFormatter(JsonFormatter())
    with bound_request(RID):
        logger.info("hello %s", "world")
    record = json.loads(stream.getvalue())
    assert record["message"] == "hello world"
    assert record["request_id"] == RID
    assert record["rid"] == "a1b2c3d4"
    assert record["level"] == "INFO"


def test_passwords_are_hidden_in_urls() -> None:
    assert safe_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert safe_url("rediss://user:pw@host:6380") == "rediss://user:***@host:6380"
    assert safe_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
