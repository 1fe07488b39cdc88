"""The order domain without I/O: validation of a placement, totals, cancellation."""

from __future__ import annotations

import pytest

from mesh.errors import FailedPrecondition, Violations
from order_svc.model import INT64_MAX, Limits, LineInput, OrderStatus, new_order, validate_placement

LIMITS = Limits()


def line(sku: str = "A", quantity: int = 1, amount: int = 100, currency: str = "EUR") -> LineInput:
    return LineInput(sku=sku, quantity=quantity, unit_price_minor=amount, currency_code=currency)


def problems(lines: list[LineInput], key: str = "k") -> list[str]:
    violations = Violations()
    validate_placement(lines, key, LIMITS, violations)
    return [v.field for v in violations.found]


def test_valid_placement_has_no_violations_and_names_its_currency() -> None:
    violations = Violations()
    assert validate_placement([line(), line("B", 3, 7)], "key", LIMITS, violations) == "EUR"
    assert violations.found == []


def test_every_bad_line_is_reported_with_its_index() -> None:
    lines = [line(quantity=0), line(sku="bad sku"), line(amount=-5), line(currency="XXX")]
    assert problems(lines) == [
        "lines[0].quantity",
        "lines[1].sku",
        "lines[2].unit_price.amount_minor",
        "lines[3].unit_price.currency_code",
    ]


def test_mixed_currencies_name_the_first_line_that_differs() -> None:
    assert problems([line(), line(currency="USD"), line()]) == ["lines[1].unit_price.currency_code"]


def test_a_total_beyond_int64_is_refused() -> None:
    big = line(quantity=LIMITS.max_quantity, amount=LIMITS.max_unit_price_minor)
    count = INT64_MAX // big.unit_price_minor // big.quantity + 1
    assert problems([big] * count) == ["lines"]
    assert problems([big] * (count - 1)) == []


def test_line_count_is_bounded() -> None:
    assert problems([]) == ["lines"]
    assert problems([line()] * LIMITS.max_lines) == []
    assert problems([line()] * (LIMITS.max_lines + 1)) == ["lines"]


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\tkey", "é"])
def test_idempotency_key_must_be_1_to_128_printable_ascii(key: str) -> None:
    assert problems([line()], key) == ["idempotency_key"]


def test_totals_are_exact_minor_units() -> None:
    order = new_order("alice", [line(quantity=3, amount=1999), line(quantity=1, amount=1)], "EUR", "k", 1)
    assert [x.total_minor for x in order.lines] == [5997, 1]
    assert order.total_minor == 5998


def test_cancel_moves_placed_to_cancelled_once() -> None:
    order = new_order("alice", [line()], "EUR", "k", 1)
    cancelled = order.cancel("admin", "fraud", 5)
    assert (cancelled.status, cancelled.cancel_ms, cancelled.cancelled_by) == (
        OrderStatus.CANCELLED,
        5,
        "admin",
    )
    assert cancelled.version == order.version + 1
    with pytest.raises(FailedPrecondition):
        cancelled.cancel("admin", "", 6)
