"""Daily activity figures: what one event adds, how figures add up, and which
UTC interval a local calendar day covers. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from mesh.dates import time_zone

ORDER_CREATED = "order.created.v1"
ORDER_CANCELLED = "order.cancelled.v1"
# event types whose payload this service reads; every other type is "unknown"
INTERPRETED_TYPES = frozenset({ORDER_CREATED, ORDER_CANCELLED})


@dataclass
class Figures:
    """Counters and sums of a period (a bucket, a UTC day or a local day)."""

    counters: dict[str, int] = field(default_factory=dict)
    orders_placed: int = 0
    orders_cancelled: int = 0
    revenue: dict[str, int] = field(default_factory=dict)
    cancelled_revenue: dict[str, int] = field(default_factory=dict)
    update_ms: int = 0

    def add(self, other: Figures) -> None:
        _add_into(self.counters, other.counters)
        _add_into(self.revenue, other.revenue)
        _add_into(self.cancelled_revenue, other.cancelled_revenue)
        self.orders_placed += other.orders_placed
        self.orders_cancelled += other.orders_cancelled
        self.update_ms = max(self.update_ms, other.update_ms)

    @property
    def unknown_event_counts(self) -> dict[str, int]:
        return {t: n for t, n in self.counters.items() if t not in INTERPRETED_TYPES}


def _add_into(target: dict[str, int], source: dict[str, int]) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value


def total(figures: Iterable[Figures]) -> Figures:
    result = Figures()
    for item in figures:
        result.add(item)
    return result


@dataclass(frozen=True)
class OrderAmount:
    """The money part of an order event."""

    currency_code: str
    amount_minor: int


def increment(event_type: str, amount: OrderAmount | None, now_ms: int) -> Figures:
    """What one event adds to its day."""
    figures = Figures(counters={event_type: 1}, update_ms=now_ms)
    if event_type == ORDER_CREATED and amount is not None:
        figures.orders_placed = 1
        figures.revenue = {amount.currency_code: amount.amount_minor}
    elif event_type == ORDER_CANCELLED and amount is not None:
        figures.orders_cancelled = 1
        figures.cancelled_revenue = {amount.currency_code: amount.amount_minor}
    return figures


def bucket_start_ms(event_ms: int, bucket_s: int) -> int:
    size = bucket_s * 1000
    return event_ms - event_ms % size


def utc_date(event_ms: int) -> str:
    return dt.datetime.fromtimestamp(event_ms / 1000, dt.UTC).date().isoformat()


class BadTimeZone(ValueError):
    """Not an IANA time zone name."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` ("" is UTC); only names of the tz database's list."""
    try:
        return time_zone(name)
    except ValueError as exc:
        raise BadTimeZone(name) from exc


def is_utc(name: str) -> bool:
    return name in ("", "UTC", "Etc/UTC")


def day_window(day: dt.date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) in epoch ms of the local calendar day `day` (23, 24 or 25
    hours long around DST changes)."""
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def local_date(epoch_ms: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz).date()


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from `start` to `end`, both included."""
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
