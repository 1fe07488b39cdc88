import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.auth.v1 import access_pb2 as _access_pb2
from switchboard.type.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DailyStats(_message.Message):
    __slots__ = ("date", "time_zone", "counters", "orders_placed", "orders_cancelled", "revenue", "cancelled_revenue", "unknown_event_counts", "update_time")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class UnknownEventCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DATE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_PLACED_FIELD_NUMBER: _ClassVar[int]
    ORDERS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_EVENT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    date: str
    time_zone: str
    counters: _containers.ScalarMap[str, int]
    orders_placed: int
    orders_cancelled: int
    revenue: _containers.RepeatedCompositeFieldContainer[_money_pb2.Money]
    cancelled_revenue: _containers.RepeatedCompositeFieldContainer[_money_pb2.Money]
    unknown_event_counts: _containers.ScalarMap[str, int]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, date: _Optional[str] = ..., time_zone: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., orders_placed: _Optional[int] = ..., orders_cancelled: _Optional[int] = ..., revenue: _Optional[_Iterable[_Union[_money_pb2.Money, _Mapping]]] = ..., cancelled_revenue: _Optional[_Iterable[_Union[_money_pb2.Money, _Mapping]]] = ..., unknown_event_counts: _Optional[_Mapping[str, int]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDailyStatsRequest(_message.Message):
    __slots__ = ("date", "time_zone")
    DATE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    date: str
    time_zone: str
    def __init__(self, date: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class GetDailyStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: DailyStats
    def __init__(self, stats: _Optional[_Union[DailyStats, _Mapping]] = ...) -> None: ...

class ListDailyStatsRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "time_zone", "page_size", "page_token")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_date: str
    end_date: str
    time_zone: str
    page_size: int
    page_token: str
    def __init__(self, start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., time_zone: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDailyStatsResponse(_message.Message):
    __slots__ = ("stats", "next_page_token")
    STATS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[DailyStats]
    next_page_token: str
    def __init__(self, stats: _Optional[_Iterable[_Union[DailyStats, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchStatsRequest(_message.Message):
    __slots__ = ("date", "time_zone")
    DATE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    date: str
    time_zone: str
    def __init__(self, date: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class WatchStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: DailyStats
    def __init__(self, stats: _Optional[_Union[DailyStats, _Mapping]] = ...) -> None: ...
