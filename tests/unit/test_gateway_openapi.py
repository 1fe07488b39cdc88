"""The OpenAPI document generated from the contracts' http rules."""

from __future__ import annotations

from typing import Any

from mesh.openapi import NDJSON, openapi_document, rest_methods


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_http_rule_becomes_an_operation() -> None:
    paths = openapi_document()["paths"]
    for method in rest_methods():
        operation = paths[method.http_path][method.http_verb]
        assert operation["x-grpc-method"] == method.grpc_path


def test_path_parameters_are_declared_and_required() -> None:
    paths = openapi_document()["paths"]
    for method in rest_methods():
        parameters = paths[method.http_path][method.http_verb]["parameters"]
        declared = {p["name"] for p in parameters if p["in"] == "path"}
        assert declared == set(method.path_params)
        assert all(p["required"] for p in parameters if p["in"] == "path")


def test_server_streams_are_documented_as_newline_delimited_json() -> None:
    paths = openapi_document()["paths"]
    for method in rest_methods():
        content = paths[method.http_path][method.http_verb]["responses"]["200"]["content"]
        assert (NDJSON in content) == method.server_streaming


def test_errors_are_documented_as_google_rpc_status() -> None:
    document = openapi_document()
    operation = document["paths"]["/v1/orders"]["post"]
    schema = operation["responses"]["default"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/google.rpc.Status"}


def test_every_schema_reference_resolves() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for ref in _refs(document["paths"]) + _refs(schemas):
        assert ref.removeprefix("#/components/schemas/") in schemas


def test_field_names_are_the_json_names_the_transcoder_uses() -> None:
    schemas = openapi_document()["components"]["schemas"]
    money = schemas["switchboard.type.v1.Money"]["properties"]
    assert money["amountMinor"] == {"type": "string", "format": "int64"}
    assert "currencyCode" in money
