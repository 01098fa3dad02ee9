"""The gateway's FastAPI application: factory, lifespan, startup banner.

:func:`create_app` builds an app from settings; tests pass their own ``EksOps`` (on
fakeredis) and worker counter, the server builds both from the environment. Routes
requiring an API key get the dependency only when keys are configured, so the OpenAPI
schema declares security exactly when it is enforced. ``/docs`` serves Swagger UI
from assets shipped in the package (``fastapi-offline``'s), never from a CDN, so it
works on a machine without internet. :func:`server_app` is what
``uvicorn producer.gateway:app`` loads: it reads the environment, refuses to start on a
bad configuration with one line, and configures logging once in the seed format.
"""

from __future__ import annotations

import functools
import logging
import platform
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from producer import jobs
from producer.audit import Auditor
from producer.client import EksOps
from producer.gateway import batches, events, health, metrics, routes, tasks
from producer.gateway.auth import require_principal
from producer.gateway.errors import install_handlers
from producer.gateway.health import HealthMonitor
from producer.gateway.keyring import Keyring
from producer.gateway.middleware import RequestContext
from producer.gateway.openapi import install_openapi
from producer.gateway.schemas import error_responses
from producer.gateway.service import Gateway, connect
from producer.gateway.settings import GatewaySettings, load_settings
from producer.gateway.trail import AuditTrail
from worker import fleet, queues
from worker.errors import ConfigurationInvalid
from worker.logs import configure_logging, log_banner, safe_url
from worker.settings import QueueSettings

logger = logging.getLogger("producer.gateway.main")

VERSION = "0.1.0"
DESCRIPTION = (
    "The seed EKS operations API, served through the eksops queue. Every operation "
    "answers 202 with a request ID to poll at /api/tasks/{request_id}; add ?wait=SECONDS "
    "to get the seed's own response (200 with its body, or its error status and detail)."
)


def celery_worker_counter(eksops: EksOps, timeout: float) -> Callable[[], int]:
    """Return a function counting the workers that answer a Celery ping."""

    def count() -> int:
        return len(eksops.app.control.ping(timeout=timeout) or [])

    return count


def create_app(
    settings: GatewaySettings | None = None,
    *,
    queue: QueueSettings | None = None,
    eksops: EksOps | None = None,
    count_workers: Callable[[], int] | None = None,
    async_redis: Any = None,
) -> FastAPI:
    """Return the gateway app; an ``eksops`` passed in is not closed on shutdown.

    ``async_redis`` is the asyncio client event streams read (tests pass a fake one).
    """
    settings = settings or GatewaySettings()
    owned = eksops is None
    if eksops is None:
        eksops = connect(settings, queue or QueueSettings())
    gateway = Gateway(eksops, settings, async_redis=async_redis)
    keyring = Keyring(api_keys=settings.api_keys, keys_file=settings.gateway_keys_file)
    monitor = HealthMonitor(
        ping_redis=eksops.redis.ping,
        count_workers=count_workers
        or celery_worker_counter(eksops, settings.gateway_health_timeout_seconds),
        settings=settings,
        read_cluster_checks=lambda: fleet.read_all(eksops.redis),
        read_trackers=lambda: jobs.trackers(eksops.redis),
        read_backlog=lambda: queues.read(eksops.redis),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _banner(settings, eksops.queue)
        try:
            yield
        finally:
            await gateway.event_streams.redis.aclose()
            if owned:
                gateway.close()
            logger.info("Gateway stopped")

    # With keys configured, every route but /health needs one: the schema and the docs
    # page too (fetch the schema with the key; the docs page asks for it to authorize).
    app = FastAPI(
        title="eksops gateway",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None if keyring.enabled else "/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.health = monitor
    app.state.keyring = keyring
    app.state.metrics = metrics.gateway_registry(
        read_backlog=lambda: queues.read(eksops.redis),
        read_trackers=lambda: jobs.trackers(eksops.redis),
    )
    install_handlers(app)
    guarded: dict[str, Any] = {}
    if keyring.enabled:
        guarded = {
            "dependencies": [Depends(require_principal(keyring))],
            "responses": error_responses(401),
        }
    app.include_router(routes.router, **guarded)
    app.include_router(tasks.router, **guarded)
    app.include_router(batches.router, **guarded)
    app.include_router(events.router, **guarded)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.gateway_max_body_bytes,
        larger_bodies={batches.BULK_CREATE_JOBS_PATH: settings.gateway_max_bulk_bytes},
    )
    # Outermost: it audits what RequestContext refuses before any route too.
    app.add_middleware(AuditTrail, auditor=Auditor(settings.audit_sink), keyring=keyring)
    install_openapi(app)
    _docs(app, guarded.get("dependencies", []))
    return app


#: Swagger UI's scripts, styles and icon, served by the gateway itself.
DOCS_ASSETS = "/docs/assets"
_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def _docs(app: FastAPI, dependencies: list[Any]) -> None:
    """Serve ``/docs`` with local assets (and the schema, guarded when keys are on)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_ASSETS), name="docs-assets")
    if dependencies:

        @app.get("/openapi.json", include_in_schema=False, dependencies=dependencies)
        async def openapi_schema() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    async def docs_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="eksops gateway",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )


def _banner(settings: GatewaySettings, queue: QueueSettings) -> None:
    keys = len(settings.gateway_api_keys)
    log_banner(
        logger,
        "eksops gateway - Startup",
        [
            f"Python version: {platform.python_version()}",
            f"Application version: {VERSION}",
            "Configuration loaded successfully:",
            f"  - EKS Cluster: {settings.eks_cluster_name or '-'}",
            f"  - AWS Region: {settings.eks_region or '-'}",
            f"  - Broker: {safe_url(queue.broker_url)}",
            f"  - Result backend: {safe_url(queue.result_backend)}",
            f"  - API keys: {f'{keys} configured' if keys else 'none (authentication off)'}",
            f"  - Max body: {settings.gateway_max_body_bytes} bytes",
            f"  - Wait: up to {settings.gateway_wait_max_seconds:g}s, "
            f"{settings.gateway_max_waiting} callers at once",
            f"  - Log Level: {settings.log_level}",
            "Application startup completed successfully",
            "Ready to accept requests",
        ],
    )


@functools.cache
def server_app() -> FastAPI:
    """Return the app configured from the environment; exit with one line if it cannot."""
    try:
        settings, queue = load_settings()
    except ConfigurationInvalid as exc:
        sys.stderr.write(f"eksops gateway: invalid configuration: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, queue=queue)
