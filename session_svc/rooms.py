"""Which chat room a new session may post to. A room given at start must be one the
session's two participants already share alone (a DIRECT room, or a SESSION room not
bound to another session) and no open session uses; it is checked synchronously by
asking chat_svc's GetRoom as the caller (on behalf of: chat_svc's own authorisation
decides whether the caller may see the room, so session_svc holds no signing key)."""

from __future__ import annotations

import grpc
from switchboard.chat.v1 import chat_service_pb2 as chat_pb
from switchboard.chat.v1 import chat_service_pb2_grpc

from mesh.client import CallOptions, shared_channel
from mesh.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, Unavailable
from session_svc.repository import SessionRepository

SHAREABLE_KINDS = (chat_pb.ROOM_KIND_DIRECT, chat_pb.ROOM_KIND_SESSION)


def require_usable_room(
    target: str,
    room_id: str,
    customer_id: str,
    advisor_id: str,
    request_id: str,
    options: CallOptions,
    sessions: SessionRepository,
) -> None:
    """Raise unless `room_id` may be the room of the session that (customer_id,
    request_id) starts with `advisor_id`."""
    room = _get_room(target, room_id, options)
    if (
        room.kind not in SHAREABLE_KINDS
        or sorted(room.member_ids) != sorted({customer_id, advisor_id})
        or (room.kind == chat_pb.ROOM_KIND_SESSION and room.session_id)
    ):
        raise _refused("must be a DIRECT or free SESSION room of exactly the customer and the advisor")
    if sessions.open_in_room(room_id, customer_id, request_id):
        raise _refused("is the room of another open session")


def _get_room(target: str, room_id: str, options: CallOptions) -> chat_pb.Room:
    stub = chat_service_pb2_grpc.ChatServiceStub(shared_channel(target))
    try:
        response = stub.GetRoom(
            chat_pb.GetRoomRequest(room_id=room_id), metadata=options.metadata, timeout=options.timeout_s
        )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code == grpc.StatusCode.NOT_FOUND:
            raise NotFound("room not found", violations=[_violation("names no room")]) from None
        if code == grpc.StatusCode.PERMISSION_DENIED:
            raise _refused("is not a room of the caller") from None
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise InvalidArgument([_violation("is not a room id")]) from None
        # Down, overloaded, or out of time: the caller may retry (a room cannot be
        # vouched for, so the session is not started without it).
        name = code.name if code is not None else "UNREACHABLE"
        raise Unavailable(f"chat_svc cannot check the room now ({name}); retry") from None
    return response.room


def _violation(description: str) -> FieldViolation:
    return FieldViolation("room_id", description)


def _refused(description: str) -> PermissionDenied:
    return PermissionDenied(f"room_id {description}", violations=[_violation(description)])
