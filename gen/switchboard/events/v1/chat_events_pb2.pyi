import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.events.v1 import event_type_pb2 as _event_type_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatRoomKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_ROOM_KIND_UNSPECIFIED: _ClassVar[ChatRoomKind]
    CHAT_ROOM_KIND_GROUP: _ClassVar[ChatRoomKind]
    CHAT_ROOM_KIND_DIRECT: _ClassVar[ChatRoomKind]
    CHAT_ROOM_KIND_SESSION: _ClassVar[ChatRoomKind]

class ChatChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_CHANNEL_UNSPECIFIED: _ClassVar[ChatChannel]
    CHAT_CHANNEL_CHAT: _ClassVar[ChatChannel]
    CHAT_CHANNEL_VOICE: _ClassVar[ChatChannel]
    CHAT_CHANNEL_TICKETS: _ClassVar[ChatChannel]

class ChatAudienceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_AUDIENCE_KIND_UNSPECIFIED: _ClassVar[ChatAudienceKind]
    CHAT_AUDIENCE_KIND_ROOM: _ClassVar[ChatAudienceKind]
    CHAT_AUDIENCE_KIND_MEMBERS: _ClassVar[ChatAudienceKind]
    CHAT_AUDIENCE_KIND_MEMBER: _ClassVar[ChatAudienceKind]

class ChatMessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_MESSAGE_KIND_UNSPECIFIED: _ClassVar[ChatMessageKind]
    CHAT_MESSAGE_KIND_USER: _ClassVar[ChatMessageKind]
    CHAT_MESSAGE_KIND_SYSTEM: _ClassVar[ChatMessageKind]

class PresenceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENCE_STATE_UNSPECIFIED: _ClassVar[PresenceState]
    PRESENCE_STATE_ONLINE: _ClassVar[PresenceState]
    PRESENCE_STATE_OFFLINE: _ClassVar[PresenceState]
CHAT_ROOM_KIND_UNSPECIFIED: ChatRoomKind
CHAT_ROOM_KIND_GROUP: ChatRoomKind
CHAT_ROOM_KIND_DIRECT: ChatRoomKind
CHAT_ROOM_KIND_SESSION: ChatRoomKind
CHAT_CHANNEL_UNSPECIFIED: ChatChannel
CHAT_CHANNEL_CHAT: ChatChannel
CHAT_CHANNEL_VOICE: ChatChannel
CHAT_CHANNEL_TICKETS: ChatChannel
CHAT_AUDIENCE_KIND_UNSPECIFIED: ChatAudienceKind
CHAT_AUDIENCE_KIND_ROOM: ChatAudienceKind
CHAT_AUDIENCE_KIND_MEMBERS: ChatAudienceKind
CHAT_AUDIENCE_KIND_MEMBER: ChatAudienceKind
CHAT_MESSAGE_KIND_UNSPECIFIED: ChatMessageKind
CHAT_MESSAGE_KIND_USER: ChatMessageKind
CHAT_MESSAGE_KIND_SYSTEM: ChatMessageKind
PRESENCE_STATE_UNSPECIFIED: PresenceState
PRESENCE_STATE_ONLINE: PresenceState
PRESENCE_STATE_OFFLINE: PresenceState

class ChatAudience(_message.Message):
    __slots__ = ("kind", "recipient_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: ChatAudienceKind
    recipient_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ChatAudienceKind, str]] = ..., recipient_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatRoomCreated(_message.Message):
    __slots__ = ("room_id", "kind", "display_name", "owner_id", "member_ids", "session_id", "create_time")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    kind: ChatRoomKind
    display_name: str
    owner_id: str
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    session_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., kind: _Optional[_Union[ChatRoomKind, str]] = ..., display_name: _Optional[str] = ..., owner_id: _Optional[str] = ..., member_ids: _Optional[_Iterable[str]] = ..., session_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatMemberJoined(_message.Message):
    __slots__ = ("room_id", "user_id", "added_by", "join_time")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDED_BY_FIELD_NUMBER: _ClassVar[int]
    JOIN_TIME_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: str
    added_by: str
    join_time: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[str] = ..., added_by: _Optional[str] = ..., join_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatMemberLeft(_message.Message):
    __slots__ = ("room_id", "user_id", "removed_by", "leave_time")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVED_BY_FIELD_NUMBER: _ClassVar[int]
    LEAVE_TIME_FIELD_NUMBER: _ClassVar[int]
    room_id: str
    user_id: str
    removed_by: str
    leave_time: _timestamp_pb2.Timestamp
    def __init__(self, room_id: _Optional[str] = ..., user_id: _Optional[str] = ..., removed_by: _Optional[str] = ..., leave_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatMessagePosted(_message.Message):
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
    channel: ChatChannel
    audience: ChatAudience
    kind: ChatMessageKind
    create_time: _timestamp_pb2.Timestamp
    system_event_type: str
    def __init__(self, message_id: _Optional[str] = ..., room_id: _Optional[str] = ..., sequence: _Optional[int] = ..., client_message_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., body: _Optional[str] = ..., channel: _Optional[_Union[ChatChannel, str]] = ..., audience: _Optional[_Union[ChatAudience, _Mapping]] = ..., kind: _Optional[_Union[ChatMessageKind, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., system_event_type: _Optional[str] = ...) -> None: ...

class PresenceChanged(_message.Message):
    __slots__ = ("user_id", "state", "replica_id", "room_ids", "change_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_IDS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    state: PresenceState
    replica_id: str
    room_ids: _containers.RepeatedScalarFieldContainer[str]
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., state: _Optional[_Union[PresenceState, str]] = ..., replica_id: _Optional[str] = ..., room_ids: _Optional[_Iterable[str]] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChatTextReceived(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: ChatMessagePosted
    def __init__(self, message: _Optional[_Union[ChatMessagePosted, _Mapping]] = ...) -> None: ...

class ChatVoiceSignalReceived(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: ChatMessagePosted
    def __init__(self, message: _Optional[_Union[ChatMessagePosted, _Mapping]] = ...) -> None: ...

class ChatTicketReceived(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: ChatMessagePosted
    def __init__(self, message: _Optional[_Union[ChatMessagePosted, _Mapping]] = ...) -> None: ...
