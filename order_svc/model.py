"""The order domain: line items, totals in exact minor units, the PLACED →
CANCELLED lifecycle and the validation of a placement. Pure: no I/O."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field, replace

from mesh.errors import FailedPrecondition, Violations
from order_svc.currencies import is_currency_code

INT64_MAX = 2**63 - 1
SKU_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


class OrderStatus(enum.Enum):
    """Lifecycle state; values match the proto enum's names without the prefix."""

    PLACED = "PLACED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Limits:
    """The contract's bounds (from OrderConfig, so none is a constant in code)."""

    max_lines: int = 100
    max_quantity: int = 1_000_000
    max_unit_price_minor: int = 10**12
    max_sku_len: int = 64
    max_idempotency_key_len: int = 128


@dataclass(frozen=True)
class Line:
    """One product line; the line total is derived, never taken from the client."""

    sku: str
    quantity: int
    unit_price_minor: int

    @property
    def total_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class Order:
    """A customer's order. Times are epoch milliseconds (the store sorts and
    filters on them as numbers)."""

    id: str
    customer_id: str
    lines: tuple[Line, ...]
    currency_code: str
    idempotency_key: str
    create_ms: int
    update_ms: int
    status: OrderStatus = OrderStatus.PLACED
    cancel_ms: int | None = None
    cancelled_by: str = ""
    cancel_reason: str = ""
    version: int = field(default=1)

    @property
    def total_minor(self) -> int:
        return sum(line.total_minor for line in self.lines)

    def cancel(self, by: str, reason: str, now_ms: int) -> Order:
        """PLACED → CANCELLED; cancelling again is refused (the caller answers the
        already-cancelled order unchanged before getting here)."""
        if self.status is not OrderStatus.PLACED:
            raise FailedPrecondition(f"order {self.id} is {self.status.value}, not PLACED")
        return replace(
            self,
            status=OrderStatus.CANCELLED,
            cancel_ms=now_ms,
            update_ms=now_ms,
            cancelled_by=by,
            cancel_reason=reason,
            version=self.version + 1,
        )


@dataclass(frozen=True)
class LineInput:
    """A line as the client sent it (before validation)."""

    sku: str
    quantity: int
    unit_price_minor: int
    currency_code: str
    has_unit_price: bool = True


def validate_placement(
    lines: list[LineInput], idempotency_key: str, limits: Limits, violations: Violations
) -> str:
    """Record every problem of a PlaceOrder request in `violations`; returns the
    order's currency (empty when none could be determined)."""
    _validate_idempotency_key(idempotency_key, limits, violations)
    if not lines:
        violations.add("lines", "at least one line is required")
    elif len(lines) > limits.max_lines:
        violations.add("lines", f"at most {limits.max_lines} lines are allowed")
        return ""
    currency = ""
    total = 0
    for index, line in enumerate(lines):
        path = f"lines[{index}]"
        _validate_sku(line.sku, f"{path}.sku", limits, violations)
        violations.check(
            0 < line.quantity <= limits.max_quantity,
            f"{path}.quantity",
            f"must be between 1 and {limits.max_quantity}",
        )
        if not violations.check(line.has_unit_price, f"{path}.unit_price", "is required"):
            continue
        violations.check(
            0 <= line.unit_price_minor <= limits.max_unit_price_minor,
            f"{path}.unit_price.amount_minor",
            f"must be between 0 and {limits.max_unit_price_minor}",
        )
        code = line.currency_code
        if not violations.check(
            is_currency_code(code), f"{path}.unit_price.currency_code", "must be an ISO 4217 code, e.g. EUR"
        ):
            continue
        if not currency:
            currency = code
        else:
            violations.check(
                code == currency,
                f"{path}.unit_price.currency_code",
                f"must be {currency}, the currency of the order (one currency per order)",
            )
        if 0 < line.quantity <= limits.max_quantity and line.unit_price_minor >= 0:
            total += line.quantity * line.unit_price_minor
    violations.check(total <= INT64_MAX, "lines", "the order total exceeds the largest amount (int64)")
    return currency


def _validate_idempotency_key(key: str, limits: Limits, violations: Violations) -> None:
    if not key:
        violations.add("idempotency_key", "is required")
        return
    max_len = limits.max_idempotency_key_len
    violations.check(len(key) <= max_len, "idempotency_key", f"must be at most {max_len} characters")
    violations.check(PRINTABLE_ASCII.fullmatch(key) is not None, "idempotency_key", "must be printable ASCII")


def _validate_sku(sku: str, path: str, limits: Limits, violations: Violations) -> None:
    if not sku:
        violations.add(path, "is required")
        return
    violations.check(
        len(sku) <= limits.max_sku_len and SKU_PATTERN.fullmatch(sku) is not None,
        path,
        f"must be 1 to {limits.max_sku_len} characters of [A-Za-z0-9._-]",
    )


def new_order(
    customer_id: str, lines: list[LineInput], currency: str, idempotency_key: str, now_ms: int
) -> Order:
    """A freshly placed order (the input is already validated)."""
    return Order(
        id=str(uuid.uuid4()),
        customer_id=customer_id,
        lines=tuple(Line(x.sku, x.quantity, x.unit_price_minor) for x in lines),
        currency_code=currency,
        idempotency_key=idempotency_key,
        create_ms=now_ms,
        update_ms=now_ms,
    )
