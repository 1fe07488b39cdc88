"""Calendar inputs every service validates the same way: a calendar date
(YYYY-MM-DD) and an IANA time zone name. Each check returns the problem as
text ('' when the value is fine), ready for a BadRequest field violation, so
no caller meets an OverflowError or a zoneinfo error later.

The supported dates stop one day short of Python's `date.min` and `date.max`:
the UTC interval of a local day reaches into the day before or after it, and
that day must exist (9999-12-31 in Europe/Paris ends in year 10000)."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only: \d matches any script
MIN_DATE = dt.date.min + dt.timedelta(days=1)
MAX_DATE = dt.date.max - dt.timedelta(days=1)
MAX_TIME_ZONE_LEN = 64
DATE_HINT = "must be a calendar date YYYY-MM-DD"
ZONE_HINT = "must be an IANA time zone name, e.g. Europe/Paris"


def parse_date(value: str) -> dt.date | None:
    """The date `value` names, or None when it is not a supported calendar date."""
    if not DATE_PATTERN.fullmatch(value):
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return day if MIN_DATE <= day <= MAX_DATE else None


def date_problem(value: str) -> str:
    """Why `value` is not a supported calendar date ('' when it is)."""
    if parse_date(value) is not None:
        return ""
    if DATE_PATTERN.fullmatch(value) and _is_calendar_date(value):
        return f"must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}"
    return DATE_HINT


def _is_calendar_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@functools.cache
def known_time_zones() -> frozenset[str]:
    """Every IANA name the installed tz database knows (read once)."""
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def time_zone_problem(name: str, max_len: int = MAX_TIME_ZONE_LEN) -> str:
    """Why `name` is not an IANA time zone name ('' when it is; the empty name
    means UTC). Names are looked up in the tz database's list, never opened as
    paths ("../x", "zone.tab")."""
    if len(name) > max_len:
        return f"must be at most {max_len} characters"
    return "" if not name or name in known_time_zones() else ZONE_HINT


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone `name` ('' is UTC); ValueError for a name `time_zone_problem` refuses."""
    name = name or "UTC"
    if time_zone_problem(name):
        raise ValueError(f"unknown time zone {name!r}")
    return zoneinfo.ZoneInfo(name)
