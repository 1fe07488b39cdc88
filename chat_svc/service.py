"""The gRPC servicer of chat_svc: proto in, command out, proto back. Validation
of request shapes lives here; membership and ownership rules in the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.chat.v1 import chat_service_pb2_grpc

from chat_svc import handlers as commands
from chat_svc.config import ChatConfig
from chat_svc.convert import message_to_proto, room_to_proto
from chat_svc.handlers import ChatHandlers, CreateRoom
from chat_svc.hub import Hub
from chat_svc.model import AudienceKind, Channel, RoomKind
from chat_svc.presence import PresenceTracker
from chat_svc.stream import Subscription
from mesh.auth import current_principal
from mesh.errors import Violations
from mesh.paging import cursor_field, decode_token, encode_token, fingerprint, page_size

ID_MAX = 128
NAME_MAX = 100
DEFAULT_PAGE = 50
MAX_PAGE = 1000
MAX_RECIPIENTS = 100
MAX_SUBSCRIBED_ROOMS = 1000


CHANNELS = {int(c) for c in Channel}
AUDIENCES = {int(a) for a in AudienceKind}


def _room_id(v: Violations, room_id: str, path: str = "room_id") -> bool:
    return v.text(room_id, path, max_len=ID_MAX)


def _channel_filter(v: Violations, channels: Sequence[int], path: str = "channels") -> frozenset[Channel]:
    """A channel filter: empty means every channel; UNSPECIFIED or an unknown
    value is an error, never "all" (a default must not widen what is delivered)."""
    for i, channel in enumerate(channels):
        v.check(channel in CHANNELS, f"{path}[{i}]", "must be CHAT, VOICE or TICKETS")
    return frozenset(Channel(c) for c in channels if c in CHANNELS)


class ChatService(chat_service_pb2_grpc.ChatServiceServicer):
    """Rooms, members, messages, presence and the resumable Subscribe stream."""

    def __init__(
        self, config: ChatConfig, handlers: ChatHandlers, hub: Hub, presence: PresenceTracker
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.hub = hub
        self.presence = presence

    async def CreateRoom(
        self, request: pb.CreateRoomRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateRoomResponse:
        v = Violations()
        v.check(
            request.kind in (RoomKind.GROUP, RoomKind.DIRECT, RoomKind.SESSION),
            "kind",
            "must be GROUP, DIRECT or SESSION",
        )
        v.text(
            request.display_name, "display_name", max_len=NAME_MAX, required=request.kind == RoomKind.GROUP
        )
        v.text(request.request_id, "request_id", max_len=ID_MAX)
        v.text(request.session_id, "session_id", max_len=ID_MAX, required=request.kind == RoomKind.SESSION)
        v.check(len(request.member_ids) < self.config.chat_max_members, "member_ids", "too many members")
        for i, member in enumerate(request.member_ids):
            v.text(member, f"member_ids[{i}]", max_len=ID_MAX)
        if request.kind == RoomKind.DIRECT:
            v.check(
                len(set(request.member_ids)) == 1, "member_ids", "a DIRECT room needs exactly one other user"
            )
        v.raise_if_any()
        command = CreateRoom(
            kind=RoomKind(request.kind),
            display_name=request.display_name,
            member_ids=list(request.member_ids),
            request_id=request.request_id,
            session_id=request.session_id,
        )
        room = await asyncio.to_thread(self.handlers.create_room, command, current_principal())
        return pb.CreateRoomResponse(room=room_to_proto(room))

    async def GetRoom(
        self, request: pb.GetRoomRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRoomResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.raise_if_any()
        room = await asyncio.to_thread(self.handlers.get_room, request.room_id, current_principal())
        return pb.GetRoomResponse(room=room_to_proto(room))

    async def ListRooms(
        self, request: pb.ListRoomsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRoomsResponse:
        v = Violations()
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE, v)
        v.check(request.kind in (0, 1, 2, 3), "kind", "unknown room kind")
        caller = current_principal()
        scope = fingerprint("rooms", caller.user_id, int(request.kind))
        offset = cursor_field(decode_token(request.page_token, scope, v), "o", int, v) or 0
        v.raise_if_any()
        rooms = await asyncio.to_thread(self.handlers.list_rooms, caller, request.kind, offset, size + 1)
        next_token = encode_token({"o": offset + size}, scope) if len(rooms) > size else ""
        return pb.ListRoomsResponse(
            rooms=[room_to_proto(r) for r in rooms[:size]], next_page_token=next_token
        )

    async def JoinRoom(
        self, request: pb.JoinRoomRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinRoomResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.raise_if_any()
        room = await asyncio.to_thread(self.handlers.join_room, request.room_id, current_principal())
        return pb.JoinRoomResponse(room=room_to_proto(room))

    async def LeaveRoom(
        self, request: pb.LeaveRoomRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveRoomResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.raise_if_any()
        await asyncio.to_thread(self.handlers.leave_room, request.room_id, current_principal())
        return pb.LeaveRoomResponse()

    async def AddMember(
        self, request: pb.AddMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddMemberResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.text(request.user_id, "user_id", max_len=ID_MAX)
        v.raise_if_any()
        room = await asyncio.to_thread(
            self.handlers.add_member,
            request.room_id,
            request.user_id,
            current_principal(),
            self.config.chat_max_members,
        )
        return pb.AddMemberResponse(room=room_to_proto(room))

    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveMemberResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.text(request.user_id, "user_id", max_len=ID_MAX)
        v.raise_if_any()
        room = await asyncio.to_thread(
            self.handlers.remove_member, request.room_id, request.user_id, current_principal()
        )
        return pb.RemoveMemberResponse(room=room_to_proto(room))

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendMessageResponse:
        command = self._send_command(request)
        message = await asyncio.to_thread(self.handlers.send_message, command, current_principal())
        return pb.SendMessageResponse(message=message_to_proto(message))

    def _send_command(self, request: pb.SendMessageRequest) -> commands.SendMessage:
        v = Violations()
        _room_id(v, request.room_id)
        v.text(request.client_message_id, "client_message_id", max_len=ID_MAX)
        limit = self.config.chat_max_body_bytes
        if v.check(bool(request.body.strip()), "body", "must not be empty"):
            v.check(len(request.body.encode()) <= limit, "body", f"must be at most {limit} UTF-8 bytes")
        # no default for either: an unset channel or audience would decide, unasked,
        # where the message goes and who sees it
        v.check(request.channel in CHANNELS, "channel", "must be CHAT, VOICE or TICKETS")
        kind = request.audience.kind
        recipients = list(request.audience.recipient_ids)
        if v.check(kind in AUDIENCES, "audience.kind", "must be ROOM, MEMBERS or MEMBER"):
            if kind == AudienceKind.ROOM:
                v.check(not recipients, "audience.recipient_ids", "must be empty for ROOM")
            elif kind == AudienceKind.MEMBERS:
                v.check(
                    1 <= len(recipients) <= MAX_RECIPIENTS,
                    "audience.recipient_ids",
                    f"must list 1 to {MAX_RECIPIENTS} members",
                )
            else:
                v.check(len(recipients) == 1, "audience.recipient_ids", "must list exactly one member")
        for i, recipient in enumerate(recipients):
            v.text(recipient, f"audience.recipient_ids[{i}]", max_len=ID_MAX)
        v.raise_if_any()
        return commands.SendMessage(
            room_id=request.room_id,
            client_message_id=request.client_message_id,
            body=request.body,
            channel=Channel(request.channel),
            audience=AudienceKind(kind),
            recipient_ids=recipients,
        )

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMessagesResponse:
        v = Violations()
        _room_id(v, request.room_id)
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE, v)
        v.check(request.before_sequence >= 0, "before_sequence", "must not be negative")
        channels = _channel_filter(v, request.channels)
        caller = current_principal()
        # a token serves only the request that earned it: same room, reader and filters
        scope = fingerprint(
            "messages", request.room_id, caller.user_id, sorted(channels), request.before_sequence
        )
        cursor = decode_token(request.page_token, scope, v)
        before = cursor_field(cursor, "b", int, v) if cursor else request.before_sequence
        v.raise_if_any()
        query = commands.ListMessages(
            room_id=request.room_id,
            before=before or 0,
            limit=size,
            channels=channels,
            before_field="page_token" if cursor else "before_sequence",
        )
        messages = await asyncio.to_thread(self.handlers.list_messages, query, caller)
        oldest = messages[-1].sequence if messages else 0
        next_token = encode_token({"b": oldest}, scope) if len(messages) == size and oldest > 1 else ""
        return pb.ListMessagesResponse(
            messages=[message_to_proto(m) for m in messages], next_page_token=next_token
        )

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeResponse]:
        v = Violations()
        v.check(
            len(request.room_ids) <= MAX_SUBSCRIBED_ROOMS, "room_ids", f"at most {MAX_SUBSCRIBED_ROOMS} rooms"
        )
        for i, room_id in enumerate(request.room_ids):
            if _room_id(v, room_id, f"room_ids[{i}]"):
                v.check(room_id not in request.room_ids[:i], f"room_ids[{i}]", "is listed twice")
        followed = set(request.room_ids)
        positions: dict[str, int] = {}
        for i, position in enumerate(request.positions):
            path = f"positions[{i}]"
            v.check(position.after_sequence >= 0, f"{path}.after_sequence", "must not be negative")
            if not _room_id(v, position.room_id, f"{path}.room_id"):
                continue
            # a position nobody follows, or a second one for a room, would be dropped silently
            if v.check(position.room_id not in positions, f"{path}.room_id", "has a position already"):
                v.check(
                    not followed or position.room_id in followed,
                    f"{path}.room_id",
                    "is not one of room_ids",
                )
            positions.setdefault(position.room_id, position.after_sequence)
        channels = _channel_filter(v, request.channels)
        v.raise_if_any()
        subscription = Subscription(
            self.config,
            self.handlers,
            self.hub,
            self.presence,
            current_principal(),
            list(request.room_ids),
            positions,
            channels,
        )
        async for response in subscription.run():
            yield response

    async def ListPresence(
        self, request: pb.ListPresenceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPresenceResponse:
        v = Violations()
        _room_id(v, request.room_id)
        v.raise_if_any()
        room = await asyncio.to_thread(self.handlers.get_room, request.room_id, current_principal())
        online = await asyncio.to_thread(self.presence.online_among, room.member_ids)
        return pb.ListPresenceResponse(online_user_ids=online)
