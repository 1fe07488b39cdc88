"""Hypothesis strategies built from the protobuf descriptors: any request message of
the mesh, filled with random and hostile values (injection strings, boundary
numbers, unknown enum numbers, out-of-range timestamps, over-long lists), and
JSON bodies for the REST routes."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import switchboard
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a" * 129,
    "a" * 4097,
    "../../etc/passwd",
    '{"$gt": ""}',
    "$where",
    "'; DROP TABLE orders; --",
    "<script>alert(1)</script>",
    "\u202e\ufeff",
    "🙂" * 200,
    "%00%2e%2e",
    "\ud7ff",
    "-1",
    "9" * 40,
    "1e309",
    "NaN",
    # Plausible values, so that validation passes now and then and deeper code runs.
    "EUR",
    "eur",
    "XXX",
    "UTC",
    "Mars/Olympus",
    "2026-01-02",
    "2026-02-30",
    "0000-01-01",
    "noop",
    "sleep",
    "daily_report",
    "alice",
    "bob",
    "order.created.v1",
    "orders",
]
HOSTILE_INTS = [0, 1, -1, 2, 100, 101, 1000, 1001, 86400, 86401, 10**12, 10**12 + 1, *INT32, *INT64]


def import_contracts() -> None:
    """Load every generated module so the default pool knows every message."""
    for module in pkgutil.walk_packages(switchboard.__path__, "switchboard."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


def message_class(full_name: str) -> type[Message]:
    import_contracts()
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=200))


def _integers(field: Any) -> st.SearchStrategy[int]:
    low, high = (
        INT64
        if field.type
        in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
        else INT32
    )
    if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        low, high = 0, 2**32 - 1
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        low, high = 0, 2**64 - 1
    edges = [v for v in HOSTILE_INTS if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def scalar(field: Any) -> st.SearchStrategy[Any]:
    # Any: the upb FieldDescriptor type and the pure-Python one differ for mypy.
    """Values for one non-message field."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=200)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(
            allow_nan=True, allow_infinity=True, width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64
        )
    if kind == FieldDescriptor.TYPE_ENUM:
        # proto3 enums are open: unknown numbers arrive at the service as they are.
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))
    return _integers(field)


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue  # each field present about half the time
        target = getattr(message, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(scalar(key_field))
                if value_field.message_type is not None:
                    if depth < MAX_DEPTH:
                        _fill(draw, target[key], depth + 1)
                else:
                    target[key] = draw(scalar(value_field))
        elif field.is_repeated:
            count = draw(st.sampled_from([0, 1, 2, 3, 101]) if depth == 0 else st.integers(0, 3))
            for _ in range(count):
                if entry is not None:
                    if depth < MAX_DEPTH:
                        _fill(draw, target.add(), depth + 1)
                else:
                    target.append(draw(scalar(field)))
        elif entry is not None:
            if depth < MAX_DEPTH:
                target.SetInParent()
                _fill(draw, target, depth + 1)
        else:
            setattr(message, field.name, draw(scalar(field)))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor) -> Message:
    """A message of `descriptor`'s type with random, often hostile, fields."""
    message = message_factory.GetMessageClass(descriptor)()
    _fill(draw, message, 0)
    return message


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text(), children, max_size=3),
    max_leaves=8,
)


def json_bodies(descriptor: Descriptor) -> st.SearchStrategy[dict[str, Any]]:
    """REST bodies: the message's own field names (JSON and proto spellings) and
    strangers, each with a value of any JSON type."""
    names = (
        [f.json_name for f in descriptor.fields] + [f.name for f in descriptor.fields] + ["@type", "$where"]
    )
    return st.dictionaries(st.sampled_from(names) | text(), JSON_VALUES, max_size=6)
