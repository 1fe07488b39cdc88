"""The OpenAPI document generated from the contracts' http rules."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

from mesh.openapi import NDJSON, is_required, load_descriptor_set, openapi_document, rest_methods


def _index(
    prefix: str, messages: list[descriptor_pb2.DescriptorProto]
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {}
    for message in messages:
        found[f"{prefix}.{message.name}"] = message
        found.update(_index(f"{prefix}.{message.name}", list(message.nested_type)))
    return found


MESSAGES = {
    name: m for f in load_descriptor_set().file for name, m in _index(f.package, list(f.message_type)).items()
}


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
    assert (money["amountMinor"]["type"], money["amountMinor"]["format"]) == ("string", "int64")
    assert "currencyCode" in money


def _required_fields() -> list[tuple[str, str]]:
    """(message full name, json name) of every field marked REQUIRED in the descriptor."""
    return [(name, f.json_name or f.name) for name, m in MESSAGES.items() for f in m.field if is_required(f)]


def _json_name(message: str, proto_name: str) -> str:
    fields = MESSAGES[message].field
    return next(f.json_name for f in fields if f.name == proto_name)


def test_every_binding_including_additional_ones_becomes_an_operation() -> None:
    paths = openapi_document()["paths"]
    bindings = [(m, b) for m in rest_methods() for b in m.bindings]
    assert ("get", "/v1/rooms:subscribe") in {(b.verb, b.path) for _, b in bindings}
    for method, binding in bindings:
        assert paths[binding.route][binding.verb]["x-grpc-method"] == method.grpc_path
    operation_ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids)) == len(bindings)


def test_every_required_field_is_required_in_its_schema() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    bodies = {
        op["x-grpc-method"]: op["requestBody"]["content"]["application/json"]["schema"]
        for ops in document["paths"].values()
        for op in ops.values()
        if "requestBody" in op
    }
    inputs = {m.input_type: m for m in rest_methods()}
    checked = 0
    for message, field in _required_fields():
        if message in schemas:
            assert field in schemas[message].get("required", []), (message, field)
            checked += 1
        if message in inputs:
            method = inputs[message]
            for binding in method.bindings:
                operation = document["paths"][binding.route][binding.verb]
                in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
                json_path = {_json_name(message, n) for n in in_path}
                if binding.body == "*" and field not in json_path:
                    assert field in bodies[method.grpc_path].get("required", []), (message, field)
                    checked += 1
    assert checked > 20  # the contracts mark many fields REQUIRED: the check ran


def test_a_request_body_leaves_out_the_fields_its_path_carries() -> None:
    operation = openapi_document()["paths"]["/v1/rooms/{room_id}/messages"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "roomId" not in body["properties"]
    assert "clientMessageId" in body["required"]


def test_enums_list_their_values_with_descriptions() -> None:
    schemas = openapi_document()["components"]["schemas"]
    enums = [s for s in schemas.values() if "enum" in s]
    assert enums
    for schema in enums:
        assert len(schema["x-enum-descriptions"]) == len(schema["enum"])
        assert all(f"`{value}`" in schema["description"] for value in schema["enum"])


def test_formats_follow_the_proto3_json_mapping() -> None:
    document = openapi_document()
    parameters = {p["name"]: p for p in document["paths"]["/v1/orders"]["get"]["parameters"]}
    assert parameters["createTimeStart"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["pageSize"]["schema"]["format"] == "int32"
    status = document["components"]["schemas"]["google.rpc.Status"]["properties"]
    assert status["code"]["format"] == "int32"


def test_every_operation_documents_its_errors_as_status() -> None:
    for operations in openapi_document()["paths"].values():
        for operation in operations.values():
            for code in ("400", "401", "403", "404", "429", "503", "default"):
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/google.rpc.Status"}
