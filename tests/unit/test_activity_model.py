"""Daily figures without I/O: increments, sums, local-day windows, key escaping,
page tokens."""

from __future__ import annotations

import datetime as dt

import pytest

from activity_svc.model import (
    BadTimeZone,
    Figures,
    OrderAmount,
    bucket_start_ms,
    day_window,
    increment,
    local_date,
    total,
    zone,
)
from activity_svc.repository import escape_key, unescape_key
from mesh.errors import Violations
from mesh.paging import decode_token, encode_token, fingerprint

HOUR_MS = 3_600_000


def test_order_created_adds_an_order_and_its_revenue() -> None:
    figures = increment("order.created.v1", OrderAmount("EUR", 250), 9)
    assert (figures.orders_placed, figures.revenue, figures.counters) == (
        1,
        {"EUR": 250},
        {"order.created.v1": 1},
    )


def test_order_cancelled_adds_to_cancellations_not_to_revenue() -> None:
    figures = increment("order.cancelled.v1", OrderAmount("EUR", 250), 9)
    assert (figures.orders_cancelled, figures.cancelled_revenue, figures.revenue) == (1, {"EUR": 250}, {})


def test_other_types_are_counted_as_unknown() -> None:
    summed = total([increment("job.registered.v1", None, 1), increment("order.created.v1", None, 2)])
    assert summed.unknown_event_counts == {"job.registered.v1": 1}
    assert summed.update_ms == 2


def test_figures_add_per_currency() -> None:
    summed = total([Figures(revenue={"EUR": 1}), Figures(revenue={"EUR": 2, "USD": 5})])
    assert summed.revenue == {"EUR": 3, "USD": 5}


@pytest.mark.parametrize(
    ("zone_name", "day", "hours"),
    [
        ("UTC", dt.date(2024, 3, 31), 24),
        ("Europe/Paris", dt.date(2024, 3, 31), 23),  # spring forward
        ("Europe/Paris", dt.date(2024, 10, 27), 25),  # fall back
        ("Asia/Kolkata", dt.date(2024, 3, 31), 24),
    ],
)
def test_a_local_day_covers_23_24_or_25_utc_hours(zone_name: str, day: dt.date, hours: int) -> None:
    start, end = day_window(day, zone(zone_name))
    assert (end - start) == hours * HOUR_MS


def test_every_zone_midnight_falls_on_a_quarter_hour_bucket() -> None:
    for name in ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla", "America/St_Johns"):
        start, end = day_window(dt.date(2024, 6, 1), zone(name))
        assert bucket_start_ms(start, 900) == start and bucket_start_ms(end, 900) == end


def test_local_date_of_a_late_utc_event() -> None:
    late = int(dt.datetime(2024, 3, 10, 23, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert local_date(late, zone("Europe/Paris")) == dt.date(2024, 3, 11)
    assert local_date(late, zone("")) == dt.date(2024, 3, 10)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(BadTimeZone):
        zone("Mars/Olympus")


@pytest.mark.parametrize("name", ["order.created.v1", "a$b", "50%.x", "%2E"])
def test_event_type_keys_survive_escaping(name: str) -> None:
    assert "." not in escape_key(name) and "$" not in escape_key(name)
    assert unescape_key(escape_key(name)) == name


def test_page_token_round_trips_and_refuses_other_filters() -> None:
    token = encode_token({"d": "2024-01-02"}, fingerprint("a", 1))
    violations = Violations()
    assert decode_token(token, fingerprint("a", 1), violations) == {"d": "2024-01-02"}
    assert decode_token(token, fingerprint("a", 2), violations) is None
    assert decode_token("!!", fingerprint("a", 1), violations) is None
    assert [v.field for v in violations.found] == ["page_token", "page_token"]
