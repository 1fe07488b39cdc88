"""Every refusal can name the request fields at fault: OUT_OF_RANGE, and
PERMISSION_DENIED / NOT_FOUND for an id, carry a BadRequest like INVALID_ARGUMENT."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2

from mesh.errors import FieldViolation, MeshError, NotFound, OutOfRange, PermissionDenied


def fields_of(error: MeshError) -> list[str]:
    status = error.to_status()
    if not status.details:
        return []
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return [v.field for v in bad.field_violations]


def test_out_of_range_is_its_own_code_with_the_field() -> None:
    error = OutOfRange([FieldViolation("positions[0].after_sequence", "room ends at 3")])
    assert error.to_status().code == code_pb2.OUT_OF_RANGE
    assert fields_of(error) == ["positions[0].after_sequence"]


@pytest.mark.parametrize(
    ("cls", "code"), [(PermissionDenied, code_pb2.PERMISSION_DENIED), (NotFound, code_pb2.NOT_FOUND)]
)
def test_denial_of_an_id_names_the_field(cls: type[MeshError], code: int) -> None:
    error = cls("refused", violations=[FieldViolation("room_ids[1]", "not a member")])
    assert error.to_status().code == code
    assert fields_of(error) == ["room_ids[1]"]


def test_denial_without_violations_has_no_details() -> None:
    assert PermissionDenied("refused").to_status().details == []
