"""Domain errors carry canonical codes and google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from mesh.errors import FieldViolation, InvalidArgument, NotFound, Violations


def test_invalid_argument_lists_every_field_violation() -> None:
    status = InvalidArgument([FieldViolation("lines[0].quantity", "must be > 0")]).to_status()
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["lines[0].quantity"]


def test_not_found_maps_to_not_found() -> None:
    assert NotFound("no such order").code == grpc.StatusCode.NOT_FOUND
    assert NotFound("no such order").to_status().code == code_pb2.NOT_FOUND


def test_violations_collects_all_then_raises_once() -> None:
    violations = Violations()
    violations.text("", "sku", max_len=10)
    violations.text("x" * 11, "name", max_len=10)
    violations.check(False, "quantity", "must be > 0")
    with pytest.raises(InvalidArgument) as raised:
        violations.raise_if_any()
    assert [v.field for v in raised.value.violations] == ["sku", "name", "quantity"]


def test_violations_without_findings_does_not_raise() -> None:
    violations = Violations()
    violations.text("ok", "sku", max_len=10)
    violations.raise_if_any()
