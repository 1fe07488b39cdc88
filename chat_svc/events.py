"""The domain events chat_svc emits (switchboard.events.v1 chat_events.proto),
built from the model. Each goes out through the outbox in the transaction of its
state change; messages and presence also travel on the fan-out exchange, and a
user's message also as its channel's inbound work item."""

from __future__ import annotations

from typing import TypeAlias

from switchboard.events.v1 import chat_events_pb2 as ce

from chat_svc.convert import message_to_proto, posted_event_data, room_fields
from chat_svc.model import Channel, Message, Room
from mesh.events import Event, event_type_of, new_event
from mesh.protos import timestamp

SOURCE = "chat"
ROOM_CREATED = event_type_of(ce.ChatRoomCreated)
MEMBER_JOINED = event_type_of(ce.ChatMemberJoined)
MEMBER_LEFT = event_type_of(ce.ChatMemberLeft)
MESSAGE_POSTED = event_type_of(ce.ChatMessagePosted)
PRESENCE_CHANGED = event_type_of(ce.PresenceChanged)

# one event type per channel, so the routing key carries the channel and each
# channel's queue binds exactly its own work
ChannelWork: TypeAlias = ce.ChatTextReceived | ce.ChatVoiceSignalReceived | ce.ChatTicketReceived
CHANNEL_WORK: dict[Channel, type[ChannelWork]] = {
    Channel.CHAT: ce.ChatTextReceived,
    Channel.VOICE: ce.ChatVoiceSignalReceived,
    Channel.TICKETS: ce.ChatTicketReceived,
}
CHANNEL_WORK_TYPES = {channel: event_type_of(message) for channel, message in CHANNEL_WORK.items()}


def room_created(room: Room) -> Event:
    data = ce.ChatRoomCreated(room_id=room.id, **room_fields(room))
    return new_event(ROOM_CREATED, SOURCE, f"rooms/{room.id}", data)


def member_joined(room_id: str, user_id: str, added_by: str, now: float) -> Event:
    """`added_by` is empty when the user joined by themselves."""
    data = ce.ChatMemberJoined(room_id=room_id, user_id=user_id, added_by=added_by, join_time=timestamp(now))
    return new_event(MEMBER_JOINED, SOURCE, f"rooms/{room_id}", data)


def member_left(room_id: str, user_id: str, removed_by: str, now: float) -> Event:
    """`removed_by` is empty when the user left by themselves."""
    data = ce.ChatMemberLeft(
        room_id=room_id, user_id=user_id, removed_by=removed_by, leave_time=timestamp(now)
    )
    return new_event(MEMBER_LEFT, SOURCE, f"rooms/{room_id}", data)


def message_posted(message: Message) -> Event:
    data = posted_event_data(message_to_proto(message))
    return new_event(MESSAGE_POSTED, SOURCE, f"rooms/{message.room_id}", data)


def channel_work(message: Message) -> Event:
    """The inbound work item of a user's message on its channel's queue."""
    data = CHANNEL_WORK[message.channel](message=posted_event_data(message_to_proto(message)))
    return new_event(CHANNEL_WORK_TYPES[message.channel], SOURCE, f"rooms/{message.room_id}", data)


def presence_changed(user_id: str, online: bool, replica_id: str, room_ids: list[str], now: float) -> Event:
    data = ce.PresenceChanged(
        user_id=user_id,
        state=ce.PRESENCE_STATE_ONLINE if online else ce.PRESENCE_STATE_OFFLINE,
        replica_id=replica_id,
        room_ids=room_ids,
        change_time=timestamp(now),
    )
    return new_event(PRESENCE_CHANGED, SOURCE, f"users/{user_id}", data)
