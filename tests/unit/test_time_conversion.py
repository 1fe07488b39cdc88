"""The one epoch → Timestamp conversion (mesh.protos): a stored time reads back as
the same Timestamp however the store rewrote the number in between."""

from __future__ import annotations

import random

import pytest

from mesh.protos import epoch_ms, now_s, optional_timestamp, timestamp


def _rewritten(epoch_s: float) -> float:
    """What the embedded store hands back after an update (`$set`): 15 significant digits."""
    return float(f"{epoch_s:.15g}")


def test_a_time_and_its_rewritten_copy_give_the_same_timestamp() -> None:
    generator = random.Random(16)
    for _ in range(100_000):
        epoch_s = 1.7e9 + generator.random() * 1e8
        assert timestamp(epoch_s) == timestamp(_rewritten(epoch_s)), repr(epoch_s)


def test_arithmetic_on_a_stored_time_does_not_move_its_millisecond() -> None:
    start = now_s()
    for seconds in (1, 60, 299.5, 86_400):
        assert epoch_ms(start + seconds) == epoch_ms(start) + round(seconds * 1000)


def test_timestamps_carry_whole_milliseconds() -> None:
    stamp = timestamp(1_800_000_000.123456789)
    assert stamp.seconds == 1_800_000_000 and stamp.nanos == 123_000_000


def test_now_is_whole_milliseconds_and_exact_in_fifteen_digits() -> None:
    now = now_s()
    assert now == _rewritten(now) and round(now * 1000) / 1000 == now


@pytest.mark.parametrize("missing", [None, 0, 0.0])
def test_a_missing_time_leaves_the_field_unset(missing: float | None) -> None:
    assert optional_timestamp(missing) is None
