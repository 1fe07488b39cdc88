"""The gRPC servicer of activity_svc: proto in, query out, proto back. Store reads
are blocking pymongo, so they run in worker threads."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import grpc
from switchboard.activity.v1 import activity_service_pb2 as pb
from switchboard.activity.v1 import activity_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from activity_svc.config import ActivityConfig
from activity_svc.handlers import DayFigures, StatsQueries
from activity_svc.notifier import ChangeNotifier
from mesh.dates import date_problem, parse_date, time_zone_problem
from mesh.errors import Violations
from mesh.paging import decode_token, encode_token, fingerprint, page_size
from mesh.protos import timestamp_ms


class ActivityService(activity_service_pb2_grpc.ActivityServiceServicer):
    """Near-real-time daily statistics built from every domain event."""

    def __init__(self, queries: StatsQueries, notifier: ChangeNotifier, config: ActivityConfig) -> None:
        self.queries = queries
        self.notifier = notifier
        self.config = config

    async def GetDailyStats(
        self, request: pb.GetDailyStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDailyStatsResponse:
        violations = Violations()
        day = _date(request.date, "date", violations)
        self._check_zone(request.time_zone, "time_zone", violations)
        violations.raise_if_any()
        assert day is not None
        found = await asyncio.to_thread(self.queries.daily, day, request.time_zone)
        return pb.GetDailyStatsResponse(stats=stats_to_pb(found))

    async def ListDailyStats(
        self, request: pb.ListDailyStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDailyStatsResponse:
        violations = Violations()
        first = _date(request.start_date, "start_date", violations)
        last = _date(request.end_date, "end_date", violations)
        self._check_zone(request.time_zone, "time_zone", violations)
        size = page_size(
            request.page_size, self.config.default_page_days, self.config.max_range_days, violations
        )
        if first is not None and last is not None:
            span = (last - first).days
            violations.check(span >= 0, "end_date", "must not be before start_date")
            violations.check(
                span <= self.config.max_range_days,
                "end_date",
                f"must be at most {self.config.max_range_days} days after start_date",
            )
        request_print = fingerprint(request.start_date, request.end_date, request.time_zone or "UTC")
        cursor = decode_token(request.page_token, request_print, violations)
        page_first = first
        if cursor is not None:
            page_first = _date(str(cursor.get("d", "")), "page_token", violations)
            if page_first is not None and first is not None and last is not None:
                violations.check(first <= page_first <= last, "page_token", "is outside the requested range")
        violations.raise_if_any()
        assert page_first is not None and last is not None
        # never past `last`, and never computed past it (9999-12-30 + 30 days overflows)
        page_last = page_first + dt.timedelta(days=min(size - 1, (last - page_first).days))
        found = await asyncio.to_thread(self.queries.range, page_first, page_last, request.time_zone)
        token = ""
        if page_last < last:
            token = encode_token({"d": (page_last + dt.timedelta(days=1)).isoformat()}, request_print)
        return pb.ListDailyStatsResponse(stats=[stats_to_pb(f) for f in found], next_page_token=token)

    async def WatchStats(
        self, request: pb.WatchStatsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchStatsResponse]:
        """The figures now, then a new snapshot on every change: woken by this
        replica's inbox commits, and re-read every `watch_refresh_s` so changes
        made by other replicas arrive too."""
        violations = Violations()
        day = _date(request.date, "date", violations)
        self._check_zone(request.time_zone, "time_zone", violations)
        violations.raise_if_any()
        assert day is not None
        changed = self.notifier.subscribe()
        try:
            last: pb.DailyStats | None = None
            while True:
                changed.clear()
                found = await asyncio.to_thread(self.queries.daily, day, request.time_zone)
                current = stats_to_pb(found)
                if current != last:
                    yield pb.WatchStatsResponse(stats=current)
                    last = current
                    # coalesce bursts: at most one snapshot per interval
                    await asyncio.sleep(self.config.watch_min_interval_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.config.watch_refresh_s)
        finally:
            self.notifier.unsubscribe(changed)

    def _check_zone(self, name: str, field_path: str, violations: Violations) -> None:
        if not violations.text(name, field_path, max_len=self.config.max_time_zone_len, required=False):
            return
        problem = time_zone_problem(name, self.config.max_time_zone_len)
        violations.check(not problem, field_path, problem)


def _date(value: str, field_path: str, violations: Violations) -> dt.date | None:
    """The date, or None with a violation: only dates whose local day (in any zone,
    with the day after it) can be computed, so no query overflows."""
    if not value:
        violations.add(field_path, "is required (YYYY-MM-DD)")
        return None
    day = parse_date(value)
    if day is None:
        violations.add(field_path, date_problem(value))
    return day


def _money(amounts: dict[str, int]) -> list[Money]:
    return [Money(currency_code=code, amount_minor=amounts[code]) for code in sorted(amounts)]


def stats_to_pb(found: DayFigures) -> pb.DailyStats:
    figures = found.figures
    message = pb.DailyStats(
        date=found.date.isoformat(),
        time_zone=found.time_zone,
        counters=figures.counters,
        orders_placed=figures.orders_placed,
        orders_cancelled=figures.orders_cancelled,
        revenue=_money(figures.revenue),
        cancelled_revenue=_money(figures.cancelled_revenue),
        unknown_event_counts=figures.unknown_event_counts,
    )
    if figures.update_ms:
        message.update_time.CopyFrom(timestamp_ms(figures.update_ms))
    return message
