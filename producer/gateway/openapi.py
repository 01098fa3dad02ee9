"""The OpenAPI schema: FastAPI's, completed with what the routes cannot declare.

The seed endpoints read their JSON body themselves, so that validation runs once, with
the shared contracts and the configured limits (a FastAPI body model would validate
without them, and answer in another shape). Their ``requestBody`` therefore points at
the contracts' own JSON schemas, added to the components here. The middleware's
``X-Request-ID`` header (accepted on every request, returned on every response) and
the ``Location`` of every 202 are added to each operation here too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from producer.gateway.middleware import REQUEST_ID_HEADER
from producer.gateway.params import DNS1123_LABEL
from producer.gateway.schemas import ErrorBody
from worker.contracts import CreateJobRequest, CreateNamespaceRequest

_REF = "#/components/schemas/{model}"
_REQUEST_ID_PARAMETER = {
    "name": REQUEST_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "Your request ID (a UUID): the operation's request ID, so repeating a "
    "submission with it is a no-op. Generated when absent; returned on every response.",
    "schema": {"type": "string", "format": "uuid"},
}
_RESPONSE_HEADERS = {
    REQUEST_ID_HEADER: {
        "description": "The request ID (yours, or the generated one).",
        "schema": {"type": "string"},
    }
}
_LOCATION = {
    "Location": {
        "description": "Relative URL to poll: /api/tasks/{request_id}.",
        "schema": {"type": "string"},
    }
}


# The seed's request bodies (request-flow.md), as examples for docs and fuzzers.
SEED_BODIES: dict[str, dict[str, Any]] = {
    "CreateJobRequest": {
        "job_manifest": {
            "spec": {
                "parallelism": 1,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "job-container",
                                "image": "my-image:latest",
                                "command": ["python", "script.py"],
                            }
                        ],
                        "restartPolicy": "Never",
                    }
                },
            }
        },
        "namespace": "default",
    },
    "CreateNamespaceRequest": {"namespace_name": "my-namespace"},
}


def _describe_contracts(schemas: dict[str, Any]) -> None:
    # Rules the contracts enforce in validators, which pydantic cannot put in the schema.
    for name, example in SEED_BODIES.items():
        schemas[name]["examples"] = [example]
    properties = schemas["CreateJobRequest"]["properties"]
    properties["namespace"].update(DNS1123_LABEL)
    properties["job_manifest"].update(
        required=["spec"],
        description="A batch/v1 Job (at least spec.template); validated against the "
        "Kubernetes Job schema. metadata.name is optional (generated from the request ID).",
    )
    schemas["CreateNamespaceRequest"]["properties"]["namespace_name"].update(DNS1123_LABEL)
    cluster = schemas["ClusterRef"]["properties"]
    cluster["name"]["pattern"] = r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$"


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """Return the JSON schemas of ``models`` and those they use, keyed by component name."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _invalid_request_id() -> dict[str, Any]:
    return {
        "description": f"Invalid input: here, an {REQUEST_ID_HEADER} header that is not a UUID.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed schema (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, component in component_schemas(ErrorBody).items():
            components.setdefault(name, component)
        contracts = component_schemas(CreateJobRequest, CreateNamespaceRequest)
        _describe_contracts(contracts)
        components.update(contracts)
        for path_item in schema["paths"].values():
            for operation in path_item.values():
                operation.setdefault("parameters", []).append(dict(_REQUEST_ID_PARAMETER))
                # The middleware refuses a malformed X-Request-ID on any path.
                operation["responses"].setdefault("422", _invalid_request_id())
                for code, response in operation["responses"].items():
                    headers = response.setdefault("headers", {})
                    headers.update(_RESPONSE_HEADERS)
                    if code == "202":
                        headers.update(_LOCATION)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
