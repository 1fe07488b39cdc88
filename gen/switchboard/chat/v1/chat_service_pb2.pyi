import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.auth.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoomKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROOM_KIND_UNSPECIFIED: _ClassVar[RoomKind]
    ROOM_KIND_GROUP: _ClassVar[RoomKind]
    ROOM_KIND_DIRECT: _ClassVar[RoomKind]
    ROOM_KIND_SESSION: _ClassVar[RoomKind]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_CHAT: _ClassVar[Channel]
    CHANNEL_VOICE: _ClassVar[Channel]
    CHANNEL_TICKETS: _ClassVar[Channel]

class AudienceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIENCE_KIND_UNSPECIFIED: _ClassVar[AudienceKind]
    AUDIENCE_KIND_ROOM: _ClassVar[AudienceKind]
    AUDIENCE_KIND_MEMBERS: _ClassVar[AudienceKind]
    AUDIENCE_KIND_MEMBER: _ClassVar[AudienceKind]

class MessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_KIND_UNSPECIFIED: _ClassVar[MessageKind]
    MESSAGE_KIND_USER: _ClassVar[MessageKind]
    MESSAGE_KIND_SYSTEM: _ClassVar[MessageKind]

class PresenceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENCE_STATE_UNSPECIFIED: _ClassVar[PresenceState]
    PRESENCE_STATE_ONLINE: _ClassVar[PresenceState]
    PRESENCE_STATE_OFFLINE: _ClassVar[PresenceState]
ROOM_KIND_UNSPECIFIED: RoomKind
ROOM_KIND_GROUP: RoomKind
ROOM_KIND_DIRECT: RoomKind
ROOM_KIND_SESSION: RoomKind
CHANNEL_UNSPECIFIED: Channel
CHANNEL_CHAT: Channel
CHANNEL_VOICE: Channel
CHANNEL_TICKETS: Channel
AUDIENCE_KIND_UNSPECIFIED: AudienceKind
AUDIENCE_KIND_ROOM: AudienceKind
AUDIENCE_KIND_MEMBERS: AudienceKind
AUDIENCE_KIND_MEMBER: AudienceKind
MESSAGE_KIND_UNSPECIFIED: MessageKind
MESSAGE_KIND_USER: MessageKind
MESSAGE_KIND_SYSTEM: MessageKind
PRESENCE_STATE_UNSPECIFIED: PresenceState
PRESENCE_STATE_ONLINE: PresenceState
PRESENCE_STATE_OFFLINE: PresenceState

class Room(_message.Message):
    __slots__ = ("id", "kind", "display_name", "owner_id", "member_ids", "session_id", "last_sequence", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: RoomKind
    display_name: str
    owner_id: str
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    session_id: str
    last_sequence: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[RoomKind, str]] = ..., display_name: _Optional[str] = ..., owner_id: _Optional[str] = ..., member_ids: _Optional[_Iterable[str]] = ..., session_id: _Optional[str] = ..., last_sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Audience(_message.Message):
    __slots__ = ("kind", "recipient_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: AudienceKind
    recipient_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[AudienceKind, str]] = ..., recipient_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("message_id", "room_id", "sequence", "client_message_id", "sender_id", "body", "channel", "audience", "kind", "create_time", "system_event_type")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    room_id: str
    sequence: int
    client_message_id: str
    sender_id: str
    body: str
    channel: Channel
    audience: Audience
    kind: MessageKind
    create_time: _timestamp_pb2.Timestamp
    system_event_type: str
    def __init__(self, message_id: _Optional[str] = ..., room_id: _Optional[str] = ..., sequence: _Optional[int] = ..., client_message_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., body: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., audience: _Optional[_Union[Audience, _Mapping]] = ..., kind: _Optional[_Union[MessageKind, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., system_event_type: _Optional[str] = ...) -> None: ...

class CreateRoomRequest(_message.Message):
    __slots__ = ("kind", "display_name", "member_ids", "request_id", "session_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    kind: RoomKind
    display_name: str
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    session_id: str
    def __init__(self, kind: _Optional[_Union[RoomKind, str]] = ..., display_name: _Optional[str] = ..., member_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CreateRoomResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class GetRoomRequest(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class GetRoomResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class ListRoomsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    kind: RoomKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kind: _Optional[_Union[RoomKind, str]] = ...) -> None: ...

class ListRoomsResponse(_message.Message):
    __slots__ = ("rooms", "next_page_token")
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[Room]
    next_page_token: str
    def __init__(self, rooms: _Optional[_Iterable[_Union[Room, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class JoinRoomRequest(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class JoinRoomResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class LeaveRoomRequest(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class LeaveRoomResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("room_id", "user_id")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: str
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("room_id", "user_id")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: str
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: Room
    def __init__(self, room: _Optional[_Union[Room, _Mapping]] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("room_id", "client_message_id", "body", "channel", "audience")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    client_message_id: str
    body: str
    channel: Channel
    audience: Audience
    def __init__(self, room_id: _Optional[str] = ..., client_message_id: _Optional[str] = ..., body: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., audience: _Optional[_Union[Audience, _Mapping]] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("room_id", "page_size", "page_token", "before_sequence", "channels")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    page_size: int
    page_token: str
    before_sequence: int
    channels: _containers.RepeatedScalarFieldContainer[Channel]
    def __init__(self, room_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., before_sequence: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[Channel, str]]] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RoomPosition(_message.Message):
    __slots__ = ("room_id", "after_sequence")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    after_sequence: int
    def __init__(self, room_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("room_ids", "positions", "channels")
    ROOM_IDS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    room_ids: _containers.RepeatedScalarFieldContainer[str]
    positions: _containers.RepeatedCompositeFieldContainer[RoomPosition]
    channels: _containers.RepeatedScalarFieldContainer[Channel]
    def __init__(self, room_ids: _Optional[_Iterable[str]] = ..., positions: _Optional[_Iterable[_Union[RoomPosition, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[Channel, str]]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("message", "presence", "heartbeat", "room_subscribed", "room_unsubscribed")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ROOM_SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    ROOM_UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    message: Message
    presence: PresenceEvent
    heartbeat: Heartbeat
    room_subscribed: RoomSubscribed
    room_unsubscribed: RoomUnsubscribed
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., presence: _Optional[_Union[PresenceEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., room_subscribed: _Optional[_Union[RoomSubscribed, _Mapping]] = ..., room_unsubscribed: _Optional[_Union[RoomUnsubscribed, _Mapping]] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ("room_id", "user_id", "state", "time")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: str
    state: PresenceState
    time: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[str] = ..., state: _Optional[_Union[PresenceState, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server_time",)
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RoomSubscribed(_message.Message):
    __slots__ = ("room_id", "last_sequence")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    last_sequence: int
    def __init__(self, room_id: _Optional[str] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class RoomUnsubscribed(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class ListPresenceRequest(_message.Message):
    __slots__ = ("room_id",)
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    def __init__(self, room_id: _Optional[str] = ...) -> None: ...

class ListPresenceResponse(_message.Message):
    __slots__ = ("online_user_ids",)
    ONLINE_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    online_user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, online_user_ids: _Optional[_Iterable[str]] = ...) -> None: ...
