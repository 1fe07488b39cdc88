"""Service layer of order_svc: one function per use case, each taking a command
and the store; the order and its event are written in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import DuplicateKeyError
from switchboard.events.v1 import order_events_pb2
from switchboard.type.v1.money_pb2 import Money

from mesh.auth import Principal
from mesh.errors import Aborted, NotFound, Violations
from mesh.events import Event, event_type_of, new_event
from mesh.outbox import Outbox
from mesh.paging import decode_token, encode_token, fingerprint
from mesh.protos import timestamp_ms
from mesh.store import Store, UnitOfWork
from order_svc.model import Limits, LineInput, Order, OrderStatus, new_order, validate_placement
from order_svc.repository import Cursor, OrderQuery, OrderRepository

SOURCE = "order_svc"
ORDER_CREATED = event_type_of(order_events_pb2.OrderCreated)
ORDER_CANCELLED = event_type_of(order_events_pb2.OrderCancelled)
T = TypeVar("T")


@dataclass(frozen=True)
class PlaceOrder:
    """Command: place an order for `customer_id` (from the token)."""

    customer_id: str
    lines: list[LineInput]
    idempotency_key: str


@dataclass(frozen=True)
class Placement:
    """A validated order and its OrderCreated event, ready to be stored."""

    order: Order
    event: Event


@dataclass(frozen=True)
class CancelOrder:
    """Command: cancel a PLACED order."""

    order_id: str
    reason: str


@dataclass(frozen=True)
class ListOrders:
    """Query: one page of orders, newest first."""

    query: OrderQuery
    page_size: int
    page_token: str


@dataclass(frozen=True)
class OrderPage:
    """One page of ListOrders and the token of the next (empty on the last)."""

    orders: list[Order]
    next_page_token: str


class OrderHandlers:
    """The use cases of order_svc over one store and its outbox."""

    def __init__(self, store: Store, outbox: Outbox, limits: Limits, transaction_attempts: int = 5) -> None:
        self.store = store
        self.outbox = outbox
        self.limits = limits
        self.transaction_attempts = transaction_attempts
        self.orders = OrderRepository(store.db)

    def _transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        return self.store.transaction(work)

    def prepare(self, command: PlaceOrder, now_ms: int) -> Placement:
        """Validate and build the order and its event (INVALID_ARGUMENT naming the fields)."""
        violations = Violations()
        currency = validate_placement(command.lines, command.idempotency_key, self.limits, violations)
        violations.raise_if_any()
        order = new_order(command.customer_id, command.lines, currency, command.idempotency_key, now_ms)
        # built before the transaction: the embedded server's per-database gate is
        # held from the first insert to the commit, so nothing slow runs in between
        return Placement(order, created_event(order))

    def store_placement(self, placement: Placement) -> Order:
        """Store one order with its event. A repeated idempotency key answers the order
        first created (whatever the retry's lines), also when two calls race: the
        unique index picks the winner and the loser reads it. No lookup before the
        transaction: a retry is rare, and every read is one more turn on the database
        for every placement."""
        order = placement.order

        def work(uow: UnitOfWork) -> Order:
            OrderRepository(uow.db).add(order, uow.session)
            self.outbox.add(uow, placement.event)
            return order

        try:
            return self._transaction(work)
        except DuplicateKeyError:
            winner = self.orders.by_idempotency_key(order.customer_id, order.idempotency_key)
            if winner is None:  # the collision was not on the key: nothing sensible to answer
                raise Aborted("concurrent placement conflict, retry") from None
            return winner

    def store_placements(self, placements: list[Placement]) -> list[Order]:
        """Store many orders and their events in one transaction (group commit). A
        repeated key fails the whole batch (DuplicateKeyError): the caller then
        stores each with `store_placement`."""

        def work(uow: UnitOfWork) -> list[Order]:
            OrderRepository(uow.db).add_many([p.order for p in placements], uow.session)
            self.outbox.add_many(uow, [p.event for p in placements])
            return [p.order for p in placements]

        return self._transaction(work)

    def get_order(self, order_id: str, principal: Principal) -> Order:
        order = self.orders.get(order_id)
        if order is None or not principal.may_access([order.customer_id]):
            # another customer's order is reported as absent: ids are not revealed
            raise NotFound(f"order {order_id} not found")
        return order

    def cancel_order(self, command: CancelOrder, principal: Principal, now_ms: int) -> Order:
        """PLACED → CANCELLED with its OrderCancelled event in one transaction;
        an already cancelled order is answered unchanged."""

        def work(uow: UnitOfWork) -> Order:
            orders = OrderRepository(uow.db)
            order = orders.get(command.order_id, uow.session)
            if order is None or not principal.may_access([order.customer_id]):
                raise NotFound(f"order {command.order_id} not found")
            if order.status is OrderStatus.CANCELLED:
                return order
            cancelled = order.cancel(principal.user_id, command.reason, now_ms)
            if not orders.save_if_unchanged(cancelled, order.version, uow.session):
                raise Aborted(f"order {order.id} changed concurrently, retry")
            self.outbox.add(uow, cancelled_event(cancelled))
            return cancelled

        return self._transaction(work)

    def list_orders(self, command: ListOrders, violations: Violations) -> OrderPage:
        """A page of orders (the caller has already scoped `query` to the principal)."""
        query = command.query
        request_print = fingerprint(
            query.customer_id,
            query.status.value if query.status else None,
            query.create_start_ms,
            query.create_end_ms,
        )
        raw = decode_token(command.page_token, request_print, violations)
        after = _cursor(raw, violations) if raw is not None else None
        violations.raise_if_any()
        found = self.orders.list(query, after, command.page_size + 1)
        page, more = found[: command.page_size], len(found) > command.page_size
        token = ""
        if more and page:
            last = page[-1]
            token = encode_token({"t": last.create_ms, "id": last.id}, request_print)
        return OrderPage(page, token)


def _cursor(raw: dict[str, object], violations: Violations) -> Cursor | None:
    create_ms, order_id = raw.get("t"), raw.get("id")
    if not isinstance(create_ms, int) or not isinstance(order_id, str):
        violations.add("page_token", "is not a token from a previous response")
        return None
    return Cursor(create_ms, order_id)


def _money(order: Order, amount_minor: int) -> Money:
    return Money(currency_code=order.currency_code, amount_minor=amount_minor)


def created_event(order: Order) -> Event:
    data = order_events_pb2.OrderCreated(
        order_id=order.id,
        customer_id=order.customer_id,
        lines=[
            order_events_pb2.OrderLine(
                sku=line.sku, quantity=line.quantity, unit_price=_money(order, line.unit_price_minor)
            )
            for line in order.lines
        ],
        total=_money(order, order.total_minor),
        create_time=timestamp_ms(order.create_ms),
    )
    event = new_event(ORDER_CREATED, SOURCE, f"orders/{order.id}", data)
    event.time.CopyFrom(timestamp_ms(order.create_ms))  # the day it counts for is the day it was placed
    return event


def cancelled_event(order: Order) -> Event:
    data = order_events_pb2.OrderCancelled(
        order_id=order.id,
        customer_id=order.customer_id,
        total=_money(order, order.total_minor),
        cancelled_by=order.cancelled_by,
        reason=order.cancel_reason,
        create_time=timestamp_ms(order.create_ms),
        cancel_time=timestamp_ms(order.cancel_ms or order.update_ms),
    )
    event = new_event(ORDER_CANCELLED, SOURCE, f"orders/{order.id}", data)
    event.time.CopyFrom(timestamp_ms(order.update_ms))
    return event
