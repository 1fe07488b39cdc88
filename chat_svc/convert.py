"""Domain model ↔ protobuf (chat.v1 messages and the ChatMessagePosted event)."""

from __future__ import annotations

from typing import Any

from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.events.v1 import chat_events_pb2

from chat_svc.model import Message, Room
from mesh.protos import timestamp


def room_fields(room: Room) -> dict[str, Any]:
    """What chat.v1 Room and the ChatRoomCreated event both say about a room."""
    return {
        "kind": int(room.kind),
        "display_name": room.display_name,
        "owner_id": room.owner_id,
        "member_ids": room.member_ids,
        "session_id": room.session_id,
        "create_time": timestamp(room.create_time),
    }


def room_to_proto(room: Room) -> pb.Room:
    return pb.Room(
        id=room.id,
        last_sequence=room.last_sequence,
        update_time=timestamp(room.update_time),
        **room_fields(room),
    )


def message_to_proto(message: Message) -> pb.Message:
    return pb.Message(
        message_id=message.id,
        room_id=message.room_id,
        sequence=message.sequence,
        client_message_id=message.client_message_id,
        sender_id=message.sender_id,
        body=message.body,
        channel=int(message.channel),  # type: ignore[arg-type]
        audience=pb.Audience(kind=int(message.audience), recipient_ids=message.recipient_ids),  # type: ignore[arg-type]
        kind=int(message.kind),  # type: ignore[arg-type]
        create_time=timestamp(message.create_time),
        system_event_type=message.system_event_type,
    )


def posted_event_data(message: pb.Message) -> chat_events_pb2.ChatMessagePosted:
    """The two messages share one wire layout (see chat_events.proto)."""
    return chat_events_pb2.ChatMessagePosted.FromString(message.SerializeToString())


def message_from_posted(posted: chat_events_pb2.ChatMessagePosted) -> pb.Message:
    return pb.Message.FromString(posted.SerializeToString())
