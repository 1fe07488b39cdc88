"""Domain errors and their gRPC form. Handlers raise these; the error interceptor
turns them into canonical status codes with `google.rpc` details, so no exception
escapes as UNKNOWN."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class MeshError(Exception):
    """Base of errors with a definite gRPC status code. `violations` names the
    request fields at fault (a BadRequest detail), whatever the code: a caller
    told PERMISSION_DENIED or NOT_FOUND learns which of its ids was refused."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)

    def details(self) -> list[any_pb2.Any]:
        """google.rpc detail messages attached to the status."""
        if not self.violations:
            return []
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        return [packed]

    def to_status(self) -> status_pb2.Status:
        """The google.rpc.Status carried in `grpc-status-details-bin`."""
        status = status_pb2.Status(code=_RPC_CODES[self.code], message=self.message)
        status.details.extend(self.details())
        return status


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path (`lines[2].quantity`) and what is wrong."""

    field: str
    description: str


class InvalidArgument(MeshError):
    """INVALID_ARGUMENT with a BadRequest listing every field violation."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[FieldViolation], message: str = "") -> None:
        found = list(violations)
        names = ", ".join(v.field for v in found)
        super().__init__(message or f"invalid argument: {names}", violations=found)


class OutOfRange(InvalidArgument):
    """OUT_OF_RANGE with a BadRequest: a well-formed value past the end of what
    exists (e.g. a resume position after a room's last message)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class NotFound(MeshError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MeshError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(MeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(MeshError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(MeshError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(MeshError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(MeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(MeshError):
    code = grpc.StatusCode.ABORTED


class DeadlineExceeded(MeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


@dataclass
class Violations:
    """Collects field violations while validating a request, then raises them all at once."""

    found: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.found.append(FieldViolation(field_path, description))

    def check(self, ok: bool, field_path: str, description: str) -> bool:
        """Record a violation unless `ok`; returns `ok` so callers can skip dependent checks."""
        if not ok:
            self.add(field_path, description)
        return ok

    def text(self, value: str, field_path: str, *, max_len: int, required: bool = True) -> bool:
        """A string field: present when required, and at most `max_len` characters."""
        if required and not value.strip():
            self.add(field_path, "must not be empty")
            return False
        return self.check(len(value) <= max_len, field_path, f"must be at most {max_len} characters")

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidArgument(self.found)


_RPC_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.CANCELLED: code_pb2.CANCELLED,
}
