"""The HTTP gateway: the seed's synchronous API, served through the eksops queue.

Run it with ``uvicorn producer.gateway:app --host 0.0.0.0 --port 8000 --no-access-log``
(configuration from the environment: ``REDIS_URL`` and the ``GATEWAY_*`` variables in
:mod:`producer.gateway.settings`). ``app`` is built on first access, so importing the
package (tests, tools) never reads the environment; :func:`create_app` builds one from
explicit settings.

Endpoints (paths, bodies, query parameters and texts of ``request-flow.md``):

* ``POST /api/eks-create-job``, ``GET /api/eks-get-job-status``,
  ``DELETE /api/eks-delete-job``, ``POST /api/eks-create-namespace``,
  ``DELETE /api/eks-delete-namespace``: 202 ``{request_id, status_url}`` + ``Location``;
  with ``?wait=SECONDS`` the seed's 200 body or its error (mapping table in
  :mod:`producer.gateway.errors`), 202 if the wait runs out.
* ``GET /api/tasks/{request_id}``: state, result or structured error, timestamps.
* ``GET /health``: ``status``, ``cluster``, ``region``, ``broker``, ``workers``; 503
  when Redis is unreachable. Never needs an API key.
* ``/openapi.json``, ``/docs``: the schema (public, like ``/health``).
"""

from __future__ import annotations

from typing import Any

from producer.gateway.factory import create_app, server_app

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        return server_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
