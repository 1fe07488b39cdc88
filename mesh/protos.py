"""Conversions between stored values and well-known protobuf types, written once.

Stored times are epoch numbers (docs/adr/0002). Every Timestamp a service sends is
built here, at millisecond precision, from the stored number alone, so the same
stored time reads back as the same Timestamp through Get, List, Watch and events,
however often the document was rewritten in between.
"""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp

# Significant digits the embedded store keeps of a double that an update rewrites
# (`$set` goes through SQLite's 15-digit text form; inserts keep all 17; ADR 0002).
STORE_DIGITS = 15


def now_s() -> float:
    """The current epoch time in seconds, truncated to whole milliseconds: the precision
    of every Timestamp we send, and one that every store keeps exactly."""
    return time.time_ns() // 1_000_000 / 1000


def epoch_ms(epoch_s: float) -> int:
    """Whole milliseconds of an epoch time in seconds. The value is first reduced to the
    digits the store keeps, so a time and the same time read back after an update give
    the same milliseconds (rounding the raw double could land either side of a .5 ms)."""
    return round(float(f"{epoch_s:.{STORE_DIGITS}g}") * 1000)


def timestamp(epoch_s: float) -> Timestamp:
    """A Timestamp (millisecond precision) from epoch seconds."""
    return timestamp_ms(epoch_ms(epoch_s))


def optional_timestamp(epoch_s: float | None) -> Timestamp | None:
    """None (field left unset) for a missing or zero time."""
    return None if not epoch_s else timestamp(epoch_s)


def set_timestamp(field: Timestamp, epoch_s: float | None) -> None:
    """Fill a message's Timestamp field in place; a missing or zero time leaves it unset."""
    if epoch_s:
        field.CopyFrom(timestamp(epoch_s))


def timestamp_ms(epoch_ms: int) -> Timestamp:
    """A Timestamp from epoch milliseconds."""
    stamp = Timestamp()
    stamp.FromMilliseconds(epoch_ms)
    return stamp
