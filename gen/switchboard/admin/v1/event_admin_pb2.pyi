import datetime

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

class OutboxStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTBOX_STATUS_UNSPECIFIED: _ClassVar[OutboxStatus]
    OUTBOX_STATUS_PENDING: _ClassVar[OutboxStatus]
    OUTBOX_STATUS_PUBLISHED: _ClassVar[OutboxStatus]
    OUTBOX_STATUS_FAILED: _ClassVar[OutboxStatus]
OUTBOX_STATUS_UNSPECIFIED: OutboxStatus
OUTBOX_STATUS_PENDING: OutboxStatus
OUTBOX_STATUS_PUBLISHED: OutboxStatus
OUTBOX_STATUS_FAILED: OutboxStatus

class OutboxMessage(_message.Message):
    __slots__ = ("id", "event_type", "subject", "status", "attempts", "last_error", "create_time", "update_time", "publish_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    event_type: str
    subject: str
    status: OutboxStatus
    attempts: int
    last_error: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    publish_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., event_type: _Optional[str] = ..., subject: _Optional[str] = ..., status: _Optional[_Union[OutboxStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListOutboxMessagesRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: OutboxStatus
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[OutboxStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOutboxMessagesResponse(_message.Message):
    __slots__ = ("outbox_messages", "next_page_token")
    OUTBOX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    outbox_messages: _containers.RepeatedCompositeFieldContainer[OutboxMessage]
    next_page_token: str
    def __init__(self, outbox_messages: _Optional[_Iterable[_Union[OutboxMessage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplayOutboxMessagesRequest(_message.Message):
    __slots__ = ("ids", "all_failed")
    IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FAILED_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    all_failed: bool
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., all_failed: _Optional[bool] = ...) -> None: ...

class ReplayOutboxMessagesResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("message_id", "event_type", "queue", "death_count", "death_reason", "first_death_time", "payload_summary")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DEATH_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    FIRST_DEATH_TIME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    event_type: str
    queue: str
    death_count: int
    death_reason: str
    first_death_time: _timestamp_pb2.Timestamp
    payload_summary: str
    def __init__(self, message_id: _Optional[str] = ..., event_type: _Optional[str] = ..., queue: _Optional[str] = ..., death_count: _Optional[int] = ..., death_reason: _Optional[str] = ..., first_death_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload_summary: _Optional[str] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("queue", "max_count")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    queue: str
    max_count: int
    def __init__(self, queue: _Optional[str] = ..., max_count: _Optional[int] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("queue", "max_count", "message_ids")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    queue: str
    max_count: int
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, queue: _Optional[str] = ..., max_count: _Optional[int] = ..., message_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...
