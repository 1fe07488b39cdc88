"""Conversions between stored values and well-known protobuf types, written once
(stored times are epoch numbers: see docs/adr/0002)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(epoch_s: float) -> Timestamp:
    """A Timestamp from epoch seconds."""
    stamp = Timestamp()
    stamp.FromNanoseconds(int(epoch_s * 1e9))
    return stamp


def optional_timestamp(epoch_s: float | None) -> Timestamp | None:
    """None (field left unset) for a missing or zero time."""
    return None if not epoch_s else timestamp(epoch_s)


def timestamp_ms(epoch_ms: int) -> Timestamp:
    """A Timestamp from epoch milliseconds."""
    stamp = Timestamp()
    stamp.FromMilliseconds(epoch_ms)
    return stamp
