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

from google.api import annotations_pb2, field_behavior_pb2
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
    # The JSON mapping writes a Duration as seconds with an `s` suffix.
    "google.protobuf.Duration": {
        "type": "string",
        "format": "duration",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "example": "1.5s",
    },
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "nullable": True},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
}

# Well-known types that bind from a query string (written as one JSON scalar).
_QUERY_WELL_KNOWN = frozenset(
    name
    for name, schema in _WELL_KNOWN.items()
    if schema.get("type") in ("string", "integer", "number", "boolean")
)


@dataclass(frozen=True)
class HttpBinding:
    """One REST mapping of an RPC: the primary `google.api.http` rule or one of its
    additional_bindings."""

    verb: str  # lower case: get, post, ...
    path: str  # the template: /v1/rooms/{room_id}/messages
    body: str  # "*", a field name, or "" (no body: fields come from the path and query)

    @property
    def path_params(self) -> list[str]:
        return [p.split("=")[0] for p in re.findall(r"{([^}]+)}", self.path)]

    @property
    def route(self) -> str:
        """The template without variable patterns (`{name=rooms/*}` → `{name}`), as OpenAPI writes it."""
        return re.sub(r"{([^}=]+)(=[^}]*)?}", r"{\1}", self.path)


def _bindings(rule: Any) -> tuple[HttpBinding, ...]:
    found = []
    for each in (rule, *rule.additional_bindings):
        verb = each.WhichOneof("pattern") or ""
        if verb in HTTP_VERBS:
            found.append(HttpBinding(verb, str(getattr(each, verb)), each.body))
    return tuple(found)


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
    # Every REST mapping, the primary rule first; http_verb/http_path/http_body repeat it.
    bindings: tuple[HttpBinding, ...] = ()

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
                        bindings=_bindings(rule),
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


def _field_behaviors(field: descriptor_pb2.FieldDescriptorProto) -> set[int]:
    return set(field.options.Extensions[field_behavior_pb2.field_behavior])


def is_required(field: descriptor_pb2.FieldDescriptorProto) -> bool:
    """True for a field the contract marks `(google.api.field_behavior) = REQUIRED`."""
    return field_behavior_pb2.REQUIRED in _field_behaviors(field)


class _Schemas:
    """Collects JSON schemas for messages and enums reachable from the REST RPCs, with
    the contracts' comments as descriptions, `required` from field_behavior and
    formats from the proto3 JSON mapping."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        # Comments by element: (message or enum full name,) or (name, field/value index).
        self.comments: dict[tuple[str, ...] | tuple[str, int], str] = {}
        for file in files.file:
            comments = _comments(file)
            self._index(file.package, file.message_type, file.enum_type, (), comments)
        self.components: dict[str, Any] = {}

    def _index(
        self,
        prefix: str,
        messages: Any,
        enums: Any,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        # descriptor.proto numbers: file.message_type 4, file.enum_type 5,
        # message.nested_type 3, message.enum_type 4, message.field 2, enum.value 2.
        message_tag, enum_tag = (3, 4) if path else (4, 5)
        for e_index, enum in enumerate(enums):
            name = f"{prefix}.{enum.name}"
            self.enums[name] = enum
            where = (*path, enum_tag, e_index)
            self.comments[(name,)] = comments.get(where, "")
            for v_index in range(len(enum.value)):
                self.comments[(name, v_index)] = comments.get((*where, 2, v_index), "")
        for m_index, message in enumerate(messages):
            name = f"{prefix}.{message.name}"
            self.messages[name] = message
            where = (*path, message_tag, m_index)
            self.comments[(name,)] = comments.get(where, "")
            for f_index in range(len(message.field)):
                self.comments[(name, f_index)] = comments.get((*where, 2, f_index), "")
            self._index(name, message.nested_type, message.enum_type, where, comments)

    def ref(self, full_name: str) -> dict[str, Any]:
        if full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full_name])
        if full_name in self.enums:
            if full_name not in self.components:
                self.components[full_name] = self._enum(full_name)
            return {"$ref": f"#/components/schemas/{full_name}"}
        if full_name not in self.components:
            self.components[full_name] = {}  # placeholder first: messages may be recursive
            self.components[full_name] = self.message(full_name)
        return {"$ref": f"#/components/schemas/{full_name}"}

    def _enum(self, full_name: str) -> dict[str, Any]:
        enum = self.enums[full_name]
        lines = [self.comments.get((full_name,), "")]
        for index, value in enumerate(enum.value):
            comment = " ".join(self.comments.get((full_name, index), "").split())
            lines.append(f"- `{value.name}`" + (f": {comment}" if comment else ""))
        return {
            "type": "string",
            "enum": [v.name for v in enum.value],
            "description": "\n".join(line for line in lines if line),
            "x-enum-descriptions": [
                " ".join(self.comments.get((full_name, i), "").split()) for i in range(len(enum.value))
            ],
        }

    def message(self, full_name: str, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The object schema of a message; `leave_out`: proto field names bound elsewhere
        (a request body without the fields its path carries)."""
        message = self.messages[full_name]
        properties: dict[str, Any] = {}
        required = []
        for index, field in enumerate(message.field):
            if field.name in leave_out:
                continue
            json_name = field.json_name or field.name
            extra: dict[str, Any] = {}
            comment = self.comments.get((full_name, index), "")
            if comment:
                extra["description"] = comment
            behaviors = _field_behaviors(field)
            if field_behavior_pb2.OUTPUT_ONLY in behaviors:
                extra["readOnly"] = True
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(json_name)
            field_schema = self.field(field)
            # A $ref cannot carry siblings in OpenAPI 3.0: wrap it to keep them.
            properties[json_name] = (
                {"allOf": [field_schema], **extra}
                if extra and "$ref" in field_schema
                else {**field_schema, **extra}
            )
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self.comments.get((full_name,), "")
        if description:
            schema["description"] = description
        return schema

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


def _query_parameters(
    schemas: _Schemas, type_name: str, prefix: str, bound: set[str], seen: frozenset[str]
) -> list[dict[str, Any]]:
    """Query parameters of a message: scalars, enums, repeated ones and the well-known
    types written as JSON strings, by dotted path into singular message fields."""
    params: list[dict[str, Any]] = []
    message = schemas.messages[type_name]
    for index, field in enumerate(message.field):
        if not prefix and field.name in bound:
            continue
        name = prefix + (field.json_name or field.name)
        target = field.type_name.lstrip(".")
        entry = schemas.messages.get(target)
        if entry is not None and entry.options.map_entry:
            continue  # maps do not bind from the query string
        if field.type == _T.TYPE_MESSAGE and target not in _QUERY_WELL_KNOWN:
            if field.label != _T.LABEL_REPEATED and target not in seen and target in schemas.messages:
                params += _query_parameters(schemas, target, name + ".", bound, seen | {target})
            continue
        param: dict[str, Any] = {"name": name, "in": "query", "schema": schemas.field(field)}
        if field.label == _T.LABEL_REPEATED:
            param.update(style="form", explode=True)
        comment = schemas.comments.get((type_name, index), "")
        if comment:
            param["description"] = comment
        if is_required(field):
            param["required"] = True
        params.append(param)
    return params


def _parameters(method: RpcMethod, binding: HttpBinding, schemas: _Schemas) -> list[dict[str, Any]]:
    message = schemas.messages[method.input_type]
    by_name = {f.name: f for f in message.field}
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schemas.field(by_name[name]) if name in by_name else {"type": "string"},
        }
        for name in binding.path_params
    ]
    if binding.body:  # with a body binding, nothing binds from the query string
        return params
    return params + _query_parameters(
        schemas, method.input_type, "", set(binding.path_params), frozenset({method.input_type})
    )


# The gateway's own errors, and the services' most common ones: every one is a
# google.rpc.Status (AIP-193).
ERROR_RESPONSES = {
    "400": "INVALID_ARGUMENT: a field is missing, malformed or unknown (BadRequest field violations)",
    "401": "UNAUTHENTICATED: no token, or one that is invalid, expired or for another audience",
    "403": "PERMISSION_DENIED: the caller's role or ownership does not allow this",
    "404": "NOT_FOUND: no such resource (or route)",
    "429": "RESOURCE_EXHAUSTED: over the route's rate limit",
    "503": "UNAVAILABLE: no healthy replica; retry with backoff",
    "504": "DEADLINE_EXCEEDED: the service did not answer in time",
}


def _operation(method: RpcMethod, binding: HttpBinding, schemas: _Schemas) -> dict[str, Any]:
    output = schemas.ref(method.output_type)
    content = (
        {NDJSON: {"schema": output}} if method.server_streaming else {"application/json": {"schema": output}}
    )
    status = {"application/json": {"schema": schemas.ref("google.rpc.Status")}}
    operation_id = f"{method.service.rsplit('.', 1)[-1]}_{method.name}"
    if binding != method.bindings[0]:
        operation_id += f"_{binding.verb}{method.bindings.index(binding)}"
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [method.service.rsplit(".", 1)[-1]],
        "summary": method.comment.split("\n")[0] if method.comment else method.name,
        "description": method.comment + ("\n\nStreams one JSON object per line." * method.server_streaming),
        "parameters": _parameters(method, binding, schemas),
        "responses": {
            "200": {"description": "OK", "content": content},
            **{code: {"description": text, "content": status} for code, text in ERROR_RESPONSES.items()},
            "default": {"description": "An error: google.rpc.Status as JSON", "content": status},
        },
        "security": [{"bearer": []}],
        "x-grpc-method": method.grpc_path,
    }
    if binding.body == "*":
        body = schemas.message(method.input_type, leave_out=frozenset(binding.path_params))
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    elif binding.body:
        field = next(f for f in schemas.messages[method.input_type].field if f.name == binding.body)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.field(field)}},
        }
    return operation


def openapi_document(path: Path = DESCRIPTOR_SET, server_url: str = "/") -> dict[str, Any]:
    """An OpenAPI 3.0 document for every REST binding of the mesh (additional ones too)."""
    schemas = _Schemas(with_error_types(load_descriptor_set(path)))
    paths: dict[str, dict[str, Any]] = {}
    for method in rest_methods(path):
        for binding in method.bindings:
            paths.setdefault(binding.route, {})[binding.verb] = _operation(method, binding, schemas)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Switchboard REST API",
            "version": "v1",
            "description": "REST through the Envoy gateway (grpc_json_transcoder). Errors are "
            "google.rpc.Status JSON; server streams are newline-delimited JSON. Unknown body "
            "fields and query parameters are refused (400).",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
