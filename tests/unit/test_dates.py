"""mesh.dates: which dates and time zones are accepted, and that every accepted
date has a computable local day in every zone (no OverflowError later)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from activity_svc.model import day_window, local_date
from mesh.dates import (
    MAX_DATE,
    MIN_DATE,
    date_problem,
    known_time_zones,
    parse_date,
    time_zone,
    time_zone_problem,
)

EXTREME_ZONES = ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Pacific/Pago_Pago", "Asia/Kathmandu"]


def test_the_days_next_to_pythons_limits_are_refused_with_the_supported_range() -> None:
    assert date_problem("9999-12-31") == "must be between 0001-01-02 and 9999-12-30"
    assert date_problem("0001-01-01") == "must be between 0001-01-02 and 9999-12-30"
    assert parse_date("9999-12-30") == MAX_DATE and parse_date("0001-01-02") == MIN_DATE


def test_malformed_dates_are_refused_as_not_a_calendar_date() -> None:
    for value in (
        "2023-02-29",
        "2024-13-01",
        "2024-1-1",
        "20240101",
        " 2024-01-01",
        "\uff12\uff10\uff12\uff14-01-01",
        "",
    ):
        assert date_problem(value) == "must be a calendar date YYYY-MM-DD", value
        assert parse_date(value) is None


def test_zones_are_names_of_the_tz_database_never_paths() -> None:
    for name in ("../../etc/passwd", "/etc/localtime", "zone.tab", "tzdata.zi", "Europe", "UTC ", "\x00"):
        assert time_zone_problem(name) == "must be an IANA time zone name, e.g. Europe/Paris", name
    assert time_zone_problem("Z" * 65) == "must be at most 64 characters"
    assert time_zone_problem("") == time_zone_problem("Europe/Paris") == ""
    assert str(time_zone("")) == "UTC"


@given(day=st.dates(min_value=MIN_DATE, max_value=MAX_DATE), name=st.sampled_from(EXTREME_ZONES))
def test_every_supported_date_has_its_local_day_in_every_zone(day: dt.date, name: str) -> None:
    tz = time_zone(name)
    start, end = day_window(day, tz)
    assert 22 * 3_600_000 <= end - start <= 26 * 3_600_000
    assert local_date(start, tz) == day


@given(value=st.text(max_size=30))
def test_any_text_is_a_date_or_a_problem(value: str) -> None:
    assert (parse_date(value) is None) == bool(date_problem(value))


@given(name=st.text(max_size=70) | st.sampled_from(sorted(known_time_zones())))
def test_any_text_is_a_zone_or_a_problem_and_never_raises_elsewhere(name: str) -> None:
    if not time_zone_problem(name):
        time_zone(name)
