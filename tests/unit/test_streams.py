"""Numbered changes delivered in order, with gaps marked (mesh.streams.in_order)."""

from __future__ import annotations

from mesh.streams import Delivery, in_order


def test_consecutive_changes_are_delivered_unmarked_in_order() -> None:
    delivered = list(in_order(3, [(5, "e"), (4, "d"), (6, "f")]))
    assert delivered == [Delivery(4, "d"), Delivery(5, "e"), Delivery(6, "f")]


def test_a_gap_is_marked_with_the_first_missing_number() -> None:
    delivered = list(in_order(1, [(2, "b"), (5, "e")]))
    assert delivered == [Delivery(2, "b"), Delivery(5, "e", coalesced_from=3)]


def test_repeats_and_older_changes_are_dropped() -> None:
    assert [d.number for d in in_order(4, [(3, "c"), (4, "d"), (5, "e"), (5, "e")])] == [5]
