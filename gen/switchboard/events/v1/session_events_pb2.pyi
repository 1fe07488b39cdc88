import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.events.v1 import event_type_pb2 as _event_type_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_END_REASON_UNSPECIFIED: _ClassVar[SessionEndReason]
    SESSION_END_REASON_ENDED: _ClassVar[SessionEndReason]
    SESSION_END_REASON_EXPIRED: _ClassVar[SessionEndReason]
SESSION_END_REASON_UNSPECIFIED: SessionEndReason
SESSION_END_REASON_ENDED: SessionEndReason
SESSION_END_REASON_EXPIRED: SessionEndReason

class SessionStarted(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "prepaid_seconds", "paid_until", "start_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREPAID_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    prepaid_seconds: int
    paid_until: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., prepaid_seconds: _Optional[int] = ..., paid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionPauseWarning(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "paid_until", "remaining_seconds", "warn_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PAID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REMAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARN_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    paid_until: _timestamp_pb2.Timestamp
    remaining_seconds: int
    warn_time: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., paid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remaining_seconds: _Optional[int] = ..., warn_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionPaused(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "pause_time", "expire_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PAUSE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    pause_time: _timestamp_pb2.Timestamp
    expire_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., pause_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionResumed(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "added_seconds", "paid_until", "paid_seconds_total", "resume_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAID_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESUME_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    added_seconds: int
    paid_until: _timestamp_pb2.Timestamp
    paid_seconds_total: int
    resume_time: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., added_seconds: _Optional[int] = ..., paid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_seconds_total: _Optional[int] = ..., resume_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionRecharged(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "added_seconds", "paid_until", "paid_seconds_total", "recharge_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAID_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RECHARGE_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    added_seconds: int
    paid_until: _timestamp_pb2.Timestamp
    paid_seconds_total: int
    recharge_time: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., added_seconds: _Optional[int] = ..., paid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_seconds_total: _Optional[int] = ..., recharge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionEnded(_message.Message):
    __slots__ = ("session_id", "customer_id", "advisor_id", "room_id", "version", "reason", "ended_by", "paid_seconds_total", "end_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ADVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    PAID_SECONDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    customer_id: str
    advisor_id: str
    room_id: str
    version: int
    reason: SessionEndReason
    ended_by: str
    paid_seconds_total: int
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., advisor_id: _Optional[str] = ..., room_id: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[_Union[SessionEndReason, str]] = ..., ended_by: _Optional[str] = ..., paid_seconds_total: _Optional[int] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
