"""Service layer of activity_svc: record one event's effect (inside the inbox
transaction) and answer the daily figures of a UTC or local day."""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from switchboard.events.v1 import order_events_pb2

from activity_svc.model import (
    ORDER_CANCELLED,
    ORDER_CREATED,
    Figures,
    OrderAmount,
    bucket_start_ms,
    day_window,
    days,
    increment,
    is_utc,
    local_date,
    total,
    utc_date,
    zone,
)
from activity_svc.notifier import ChangeNotifier
from activity_svc.repository import StatsRepository
from mesh.events import Event, unpack
from mesh.store import Store, UnitOfWork


@dataclass(frozen=True)
class DayFigures:
    """The figures of one calendar day in one zone."""

    date: dt.date
    time_zone: str
    figures: Figures


# (UTC date, bucket start ms) → what the events of one transaction add there
PendingFigures = dict[tuple[str, int], Figures]


class StatsRecorder:
    """The inbox effect: adds an event to its day and bucket, then notifies watchers.
    The events of one transaction (a batch of deliveries) are summed in memory and
    written once per day and bucket just before it commits: two updates per batch,
    not two per event."""

    def __init__(self, notifier: ChangeNotifier, bucket_s: int) -> None:
        self.notifier = notifier
        self.bucket_s = bucket_s
        self._pending: weakref.WeakKeyDictionary[UnitOfWork, PendingFigures] = weakref.WeakKeyDictionary()

    def __call__(self, uow: UnitOfWork, event: Event) -> None:
        now_ms = time.time_ns() // 1_000_000
        # the day an event counts for is the day it happened, not the day it arrived
        event_ms = event.time.ToMilliseconds() if event.time.seconds else now_ms
        figures = increment(event.type, _amount(event), now_ms)
        key = (utc_date(event_ms), bucket_start_ms(event_ms, self.bucket_s))
        pending = self._pending.get(uow)
        if pending is None:
            pending = self._pending[uow] = {}
            uow.before_commit(_writer(uow, pending))
            uow.after_commit(self.notifier.notify)
        pending.setdefault(key, Figures()).add(figures)


def _writer(uow: UnitOfWork, pending: PendingFigures) -> Callable[[], None]:
    # holds the session, not the unit of work: its pending entry goes with it
    stats, session = StatsRepository(uow.db), uow.session

    def write() -> None:
        for (date, bucket_start), figures in pending.items():
            stats.add(figures, date, bucket_start, session)

    return write


def _amount(event: Event) -> OrderAmount | None:
    """The money of an order event; a payload of the wrong type raises (the bus
    retries, then parks the message) rather than being counted wrongly."""
    if event.type == ORDER_CREATED:
        created = unpack(event, order_events_pb2.OrderCreated)
        return OrderAmount(created.total.currency_code, created.total.amount_minor)
    if event.type == ORDER_CANCELLED:
        cancelled = unpack(event, order_events_pb2.OrderCancelled)
        return OrderAmount(cancelled.total.currency_code, cancelled.total.amount_minor)
    return None


class StatsQueries:
    """Daily figures for any zone: UTC days are read whole, other zones are summed
    from the UTC buckets their local day covers."""

    def __init__(self, store: Store) -> None:
        self.stats = StatsRepository(store.db)

    def daily(self, day: dt.date, time_zone: str) -> DayFigures:
        return self.range(day, day, time_zone)[0]

    def range(self, first: dt.date, last: dt.date, time_zone: str) -> list[DayFigures]:
        """One entry per day from `first` to `last`, days without events included."""
        wanted = days(first, last)
        name = time_zone or "UTC"
        if is_utc(time_zone):
            found = self.stats.utc_days([d.isoformat() for d in wanted])
            return [DayFigures(d, name, found.get(d.isoformat(), Figures())) for d in wanted]
        tz = zone(time_zone)
        start_ms, _ = day_window(first, tz)
        _, end_ms = day_window(last, tz)
        per_day: dict[dt.date, list[Figures]] = defaultdict(list)
        for start, figures in self.stats.buckets_between(start_ms, end_ms):
            per_day[local_date(start, tz)].append(figures)
        return [DayFigures(d, name, total(per_day.get(d, []))) for d in wanted]
