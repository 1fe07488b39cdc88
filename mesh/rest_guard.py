"""The gateway's REST guard: the Lua filter (gateway/rest_guard.lua) that refuses JSON
fields and query parameters the contract does not know, with the route and message
tables it needs rendered from the descriptor set the transcoder reads, so both read
one source."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from mesh.openapi import DESCRIPTOR_SET, HttpBinding, load_descriptor_set, rest_methods, with_error_types

LUA_SOURCE = Path(__file__).resolve().parent.parent / "gateway" / "rest_guard.lua"
_T = descriptor_pb2.FieldDescriptorProto
# Well-known types the proto3 JSON mapping writes as a JSON string or number.
SCALAR_WELL_KNOWN = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        *(
            f"google.protobuf.{w}Value"
            for w in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
        ),
    }
)
# Any JSON at all: the JSON mapping gives them no fixed fields (an Any's @type names its own).
OPAQUE_WELL_KNOWN = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any"}
)


def lua_pattern(template: str) -> str:
    """A Lua pattern matching the request paths of an http rule template (no query)."""
    verb = ""
    if _custom_verb(template):
        template, verb = template.rsplit(":", 1)
    pattern = ""
    for piece in re.split(r"({[^}]*}|\*\*|\*)", template):
        if piece.startswith("{"):
            inner = piece[1:-1].partition("=")[2] or "*"
            pattern += ".+" if "**" in inner else "[^/]+" if inner == "*" else lua_pattern(inner)[1:-1]
        elif piece == "**":
            pattern += ".+"
        elif piece == "*":
            pattern += "[^/]+"
        else:
            pattern += re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", piece)
    return "^" + pattern + (":" + re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", verb) if verb else "") + "$"


def _lua(value: Any) -> str:
    """A Lua literal for JSON-like data (strings via JSON escapes, which Lua shares
    for the ASCII the contracts use)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    return str(value)


class _Messages:
    """Field tables of every message reachable from the REST request types."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.index: dict[str, descriptor_pb2.DescriptorProto] = {}
        for file in files.file:
            self._walk(file.package, file.message_type)
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}

    def _walk(self, prefix: str, messages: Any) -> None:
        for message in messages:
            name = f"{prefix}.{message.name}"
            self.index[name] = message
            self._walk(name, message.nested_type)

    def kind(self, type_name: str) -> str:
        if type_name in SCALAR_WELL_KNOWN:
            return "w"
        if type_name in OPAQUE_WELL_KNOWN:
            return "o"
        self.add(type_name)
        return "m"

    def field(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        type_name = field.type_name.lstrip(".")
        entry = self.index.get(type_name)
        if entry is not None and entry.options.map_entry:
            value = entry.field[1]
            if value.type == _T.TYPE_MESSAGE:
                value_type = value.type_name.lstrip(".")
                return {"k": "o", "map": self.kind(value_type), "t": value_type}
            return {"k": "o", "map": "s"}
        spec: dict[str, Any] = (
            {"k": self.kind(type_name), "t": type_name} if field.type == _T.TYPE_MESSAGE else {"k": "s"}
        )
        if field.label == _T.LABEL_REPEATED:
            spec["r"] = True
        return spec

    def add(self, type_name: str) -> None:
        if type_name in self.tables:
            return
        self.tables[type_name] = {}  # first: messages may be recursive
        table: dict[str, dict[str, Any]] = {}
        for field in self.index[type_name].field:
            spec = self.field(field)
            # The JSON mapping accepts both the lowerCamel json_name and the proto name.
            table[field.json_name or field.name] = spec
            table[field.name] = spec
        self.tables[type_name] = table


def _custom_verb(template: str) -> bool:
    last = template.rsplit("/", 1)[-1]
    return ":" in last and "}" not in last.split(":", 1)[1]


def route_table(path: Path = DESCRIPTOR_SET) -> list[dict[str, Any]]:
    """Every REST binding (additional ones included) as {v, p, b, m} for the Lua filter;
    bindings with a custom verb first, so `/x/{id}:watch` is not taken for `/x/{id}`."""
    rows: list[tuple[HttpBinding, str]] = [(b, m.input_type) for m in rest_methods(path) for b in m.bindings]
    rows.sort(key=lambda row: not _custom_verb(row[0].path))
    return [
        {"v": b.verb.upper(), "p": lua_pattern(b.path), "b": b.body, "m": m, "x": _custom_verb(b.path)}
        for b, m in rows
    ]


def render_lua(max_path_bytes: int, max_header_bytes: int, path: Path = DESCRIPTOR_SET) -> str:
    """The guard's Lua source with its tables: routes, messages, limits."""
    messages = _Messages(with_error_types(load_descriptor_set(path)))
    routes = route_table(path)
    for route in routes:
        messages.add(route["m"])
    return (
        "-- Rendered by mesh/rest_guard.py from the descriptor set: do not edit.\n"
        f"ROUTES = {_lua(routes)}\n"
        f"MESSAGES = {_lua(messages.tables)}\n"
        f"LIMITS = {_lua({'max_path_bytes': max_path_bytes, 'max_header_bytes': max_header_bytes})}\n"
        + LUA_SOURCE.read_text()
    )
