"""Property-based run over the served OpenAPI schema: no 5xx, answers as documented.

schemathesis generates requests from the schema (valid and invalid) and checks every
answer against it, in-process over ASGI against the gateway on fakeredis (no worker:
``?wait`` is capped at a few milliseconds so waits cannot slow the run). The app is
built at import because schemathesis loads the schema when the module is collected.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import schemathesis
from celery import Celery
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from producer import EksOps
from producer.gateway import create_app
from producer.gateway.settings import GatewaySettings
from worker.delivery.config import celery_settings
from worker.settings import QueueSettings

KEY = "schemathesis-key-0123456789"


def gateway_on_fakeredis(**overrides: Any) -> FastAPI:
    queue = QueueSettings(redis_url="redis://unused:6379/0", _env_file=None)
    app = Celery("schemathesis", set_as_current=False)
    app.conf.update({**celery_settings(queue), "result_backend": "cache+memory://"})
    gateway_settings = GatewaySettings(
        gateway_wait_max_seconds=0.01,
        _env_file=None,
        **overrides,
    )
    server = fakeredis.FakeServer()
    eksops = EksOps(
        settings=gateway_settings, queue=queue, app=app, redis=fakeredis.FakeRedis(server=server)
    )
    return create_app(
        gateway_settings,
        eksops=eksops,
        count_workers=lambda: 1,
        async_redis=fakeredis.FakeAsyncRedis(server=server),
    )


# The event stream never ends by itself (tests/gateway/test_events.py checks it).
OPEN = schemathesis.openapi.from_asgi("/openapi.json", gateway_on_fakeredis()).exclude(
    path="/api/events"
)
GUARDED = schemathesis.openapi.from_asgi(
    "/openapi.json", gateway_on_fakeredis(gateway_api_keys=KEY), headers={"X-API-Key": KEY}
).exclude(path="/api/events")


@OPEN.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_gateway_answers_every_generated_request_as_its_schema_says(
    case: schemathesis.Case[Any],
) -> None:
    # Positive data the schema allows may still break a rule the schema cannot express (a
    # Job manifest's Kubernetes schema, protected namespaces): that is a 422 by design.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@GUARDED.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_with_api_keys_the_gateway_still_answers_as_its_schema_says(
    case: schemathesis.Case[Any],
) -> None:
    case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=[positive_data_acceptance])
