"""The REST surface of the mesh read from the descriptor set (gen/switchboard.pb):
every RPC with its `google.api.http` rule, and an OpenAPI 3 document generated
from those rules. No maintained generator installs from PyPI or npm here
(grpc-gateway's protoc-gen-openapiv2 is a Go binary), so this reads the
descriptors directly; the gateway serves the result at /openapi.json."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from switchboard.auth.v1 import access_pb2

DESCRIPTOR_SET = Path(__file__).resolve().parent.parent / "gen" / "switchboard.pb"
HTTP_VERBS = ("get", "put", "post", "delete", "patch")
NDJSON = "application/x-ndjson"
_T = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[int, dict[str, str]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    # proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision).
    _T.TYPE_INT64: {"type": "string", "format": "int64"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int64"},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
}


@dataclass(frozen=True)
class RpcMethod:
    """One RPC of the mesh and its REST mapping (verb and path empty when it has none)."""

    service: str  # full name: switchboard.order.v1.OrderService
    name: str
    input_type: str  # full message name, no leading dot
    output_type: str
    server_streaming: bool
    client_streaming: bool
    http_verb: str
    http_path: str
    http_body: str
    roles: tuple[int, ...]
    comment: str

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def idempotent(self) -> bool:
        """Reads (HTTP GET) may be retried by the gateway; writes are retried only
        when the request never reached the upstream."""
        return self.http_verb == "get"

    @property
    def path_params(self) -> list[str]:
        return [p.split("=")[0] for p in re.findall(r"{([^}]+)}", self.http_path)]


@cache
def load_descriptor_set(path: Path = DESCRIPTOR_SET) -> descriptor_pb2.FileDescriptorSet:
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(path.read_bytes())
    return files


def with_error_types(files: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.FileDescriptorSet:
    """`files` plus google.rpc.Status and its detail types: errors are printed as
    JSON from them (Envoy's `convert_grpc_status`, the OpenAPI error schema), but
    no contract imports them, so protoc leaves them out of gen/switchboard.pb."""
    merged = descriptor_pb2.FileDescriptorSet()
    merged.CopyFrom(files)
    present = {f.name for f in merged.file}
    for module in (status_pb2, error_details_pb2, code_pb2):
        for dependency in [*module.DESCRIPTOR.dependencies, module.DESCRIPTOR]:
            if dependency.name not in present:
                dependency.CopyToProto(merged.file.add())
                present.add(dependency.name)
    return merged


def rpc_methods(path: Path = DESCRIPTOR_SET) -> list[RpcMethod]:
    """Every RPC of every service in the descriptor set, in file order."""
    methods = []
    for file in load_descriptor_set(path).file:
        comments = _comments(file)
        for s_index, service in enumerate(file.service):
            full = f"{file.package}.{service.name}"
            for m_index, method in enumerate(service.method):
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern") or ""
                access = method.options.Extensions[access_pb2.access]
                methods.append(
                    RpcMethod(
                        service=full,
                        name=method.name,
                        input_type=method.input_type.lstrip("."),
                        output_type=method.output_type.lstrip("."),
                        server_streaming=method.server_streaming,
                        client_streaming=method.client_streaming,
                        http_verb=verb if verb in HTTP_VERBS else "",
                        http_path=str(getattr(rule, verb)) if verb in HTTP_VERBS else "",
                        http_body=rule.body,
                        roles=tuple(access.roles),
                        comment=comments.get((6, s_index, 2, m_index), ""),
                    )
                )
    return methods


def rest_methods(path: Path = DESCRIPTOR_SET) -> list[RpcMethod]:
    """The RPCs that browsers reach through the transcoder."""
    return [m for m in rpc_methods(path) if m.http_verb]


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {
        tuple(loc.path): loc.leading_comments.strip()
        for loc in file.source_code_info.location
        if loc.leading_comments
    }


class _Schemas:
    """Collects JSON schemas for messages and enums reachable from the REST RPCs."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        for file in files.file:
            self._index(file.package, file.message_type, file.enum_type)
        self.components: dict[str, Any] = {}

    def _index(
        self,
        prefix: str,
        messages: Any,
        enums: Any,
    ) -> None:
        for enum in enums:
            self.enums[f"{prefix}.{enum.name}"] = enum
        for message in messages:
            name = f"{prefix}.{message.name}"
            self.messages[name] = message
            self._index(name, message.nested_type, message.enum_type)

    def ref(self, full_name: str) -> dict[str, Any]:
        if full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full_name])
        if full_name in self.enums:
            if full_name not in self.components:
                values = [v.name for v in self.enums[full_name].value]
                self.components[full_name] = {"type": "string", "enum": values}
            return {"$ref": f"#/components/schemas/{full_name}"}
        if full_name not in self.components:
            self.components[full_name] = {}  # placeholder first: messages may be recursive
            self.components[full_name] = self._message(self.messages[full_name])
        return {"$ref": f"#/components/schemas/{full_name}"}

    def _message(self, message: descriptor_pb2.DescriptorProto) -> dict[str, Any]:
        properties = {}
        for field in message.field:
            properties[field.json_name or field.name] = self.field(field)
        return {"type": "object", "properties": properties}

    def field(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        type_name = field.type_name.lstrip(".")
        entry = self.messages.get(type_name)
        if entry is not None and entry.options.map_entry:
            return {"type": "object", "additionalProperties": self.field(entry.field[1])}
        if field.type in (_T.TYPE_MESSAGE, _T.TYPE_ENUM):
            schema = self.ref(type_name)
        else:
            schema = dict(_SCALARS[field.type])
        if field.label == _T.LABEL_REPEATED:
            return {"type": "array", "items": schema}
        return schema


def _parameters(method: RpcMethod, schemas: _Schemas) -> list[dict[str, Any]]:
    message = schemas.messages[method.input_type]
    by_name = {f.name: f for f in message.field}
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schemas.field(by_name[name]) if name in by_name else {"type": "string"},
        }
        for name in method.path_params
    ]
    if method.http_body == "*":
        return params
    for field in message.field:
        # Only scalars and enums bind from the query string.
        if field.name in method.path_params or field.type == _T.TYPE_MESSAGE:
            continue
        params.append({"name": field.json_name or field.name, "in": "query", "schema": schemas.field(field)})
    return params


def _operation(method: RpcMethod, schemas: _Schemas) -> dict[str, Any]:
    output = schemas.ref(method.output_type)
    content = (
        {NDJSON: {"schema": output}} if method.server_streaming else {"application/json": {"schema": output}}
    )
    operation: dict[str, Any] = {
        "operationId": f"{method.service.rsplit('.', 1)[-1]}_{method.name}",
        "tags": [method.service.rsplit(".", 1)[-1]],
        "summary": method.comment.split("\n")[0] if method.comment else method.name,
        "description": method.comment + ("\n\nStreams one JSON object per line." * method.server_streaming),
        "parameters": _parameters(method, schemas),
        "responses": {
            "200": {"description": "OK", "content": content},
            "default": {
                "description": "An error: google.rpc.Status as JSON",
                "content": {"application/json": {"schema": schemas.ref("google.rpc.Status")}},
            },
        },
        "security": [{"bearer": []}],
        "x-grpc-method": method.grpc_path,
    }
    if method.http_body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(method.input_type)}},
        }
    return operation


def openapi_document(path: Path = DESCRIPTOR_SET, server_url: str = "/") -> dict[str, Any]:
    """An OpenAPI 3.0 document for every REST route of the mesh."""
    schemas = _Schemas(with_error_types(load_descriptor_set(path)))
    paths: dict[str, dict[str, Any]] = {}
    for method in rest_methods(path):
        route = re.sub(r"{([^}=]+)(=[^}]*)?}", r"{\1}", method.http_path)
        paths.setdefault(route, {})[method.http_verb] = _operation(method, schemas)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Switchboard REST API",
            "version": "v1",
            "description": "REST through the Envoy gateway (grpc_json_transcoder). Errors are "
            "google.rpc.Status JSON; server streams are newline-delimited JSON.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
