"""Every operation is declared once, and every producer and the worker follow it."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from producer.cli.main import cli
from producer.client import EksOps
from producer.gateway.routes import router
from worker.catalog import CATALOG, Run, spec_of
from worker.contracts import Operation


def test_every_operation_is_declared_once_with_its_texts() -> None:
    assert set(CATALOG) == set(Operation)
    assert len({spec.command for spec in CATALOG.values()}) == len(Operation)
    assert len({spec.route.path for spec in CATALOG.values()}) == len(Operation)
    for spec in CATALOG.values():
        assert spec_of(spec.task_name) is spec
        for given in spec.inputs:
            assert given.field in spec.request.model_fields


def test_each_declaration_binds_to_its_functions_keywords() -> None:
    # The worker calls each function with what its declaration binds, plus the cluster.
    import importlib  # noqa: PLC0415 - the worker's operations, for this check only

    for spec in CATALOG.values():
        module, _, name = spec.function.partition(":")
        function = getattr(importlib.import_module(module), name)
        sample = spec.request.model_construct(
            **{field: f"x-{field}" for field in spec.request.model_fields}
        )
        keywords = {"cluster", *spec.bind(sample, Run(request_id="r"))}
        parameters = inspect.signature(function).parameters
        assert keywords <= set(parameters), spec.operation
        required = {n for n, p in parameters.items() if p.default is inspect.Parameter.empty}
        assert required <= keywords, spec.operation


def test_the_library_has_a_method_per_operation_taking_its_arguments() -> None:
    for spec in CATALOG.values():
        method = getattr(EksOps, spec.operation.value)
        parameters = set(inspect.signature(method).parameters) - {"self"}
        assert set(spec.request.model_fields) <= parameters, spec.operation
        assert {"request_id", "cluster"} <= parameters


def test_the_cli_has_a_command_per_operation_with_the_declared_help() -> None:
    for spec in CATALOG.values():
        command = cli.commands[spec.command]
        assert (command.help or "").startswith(spec.summary)
        assert "``" not in (command.help or "")
        names = {parameter.name for parameter in command.params}
        assert {given.field for given in spec.inputs} <= names


def test_the_gateway_serves_each_declared_route() -> None:
    routes = {
        (route.path, method)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    for spec in CATALOG.values():
        assert (spec.route.path, spec.route.method) in routes
