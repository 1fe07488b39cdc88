"""Group commit of PlaceOrder against the embedded MongoDB: placements that share one
transaction each get their order and OrderCreated event; a repeated idempotency key
in a batch falls back to one transaction each and answers the first order."""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from typing import Any

import pytest

from mesh.batching import GroupCommit
from mesh.config import MeshConfig
from mesh.outbox import Outbox
from mesh.store import Store
from order_svc.handlers import ORDER_CREATED, OrderHandlers, Placement, PlaceOrder
from order_svc.model import Limits, LineInput, Order
from order_svc.repository import OrderRepository


@pytest.fixture
def handlers(config: MeshConfig, store: Store) -> OrderHandlers:
    outbox = Outbox(store, config)
    outbox.ensure_indexes()
    OrderRepository(store.db).ensure_indexes()
    return OrderHandlers(store, outbox, Limits())


def _placement(handlers: OrderHandlers, customer: str, key: str, quantity: int = 1) -> Placement:
    command = PlaceOrder(customer, [LineInput("SKU-1", quantity, 250, "EUR")], key)
    return handlers.prepare(command, 1_800_000_000_000)


def _commit_together(
    handlers: OrderHandlers, placements: list[Placement], *, singles_allowed: bool = True
) -> list[Any]:
    def store_one(placement: Placement) -> Order:
        if not singles_allowed:
            pytest.fail("the batch fell back to single transactions")
        return handlers.store_placement(placement)

    batcher = GroupCommit("test", handlers.store_placements, store_one, max_batch=100)
    batch = [(placement, Future[Order]()) for placement in placements]
    batcher.commit(batch)
    return [future.result(timeout=0) for _, future in batch]


def test_placements_committed_together_each_get_their_order_and_event(
    handlers: OrderHandlers, store: Store
) -> None:
    placements = [_placement(handlers, f"c{i}", uuid.uuid4().hex, quantity=i + 1) for i in range(8)]
    orders = _commit_together(handlers, placements, singles_allowed=False)
    assert [o.id for o in orders] == [p.order.id for p in placements]
    stored = {d["_id"]: d for d in store.db.orders.find({"_id": {"$in": [o.id for o in orders]}})}
    assert len(stored) == 8
    assert store.db.outbox.count_documents({"type": ORDER_CREATED}) == 8
    subjects = {row["subject"] for row in store.db.outbox.find({"type": ORDER_CREATED})}
    assert len(subjects) == 8


def test_a_repeated_key_in_a_batch_answers_the_first_order_to_both(
    handlers: OrderHandlers, store: Store
) -> None:
    key = uuid.uuid4().hex
    first = handlers.store_placement(_placement(handlers, "carol", key, quantity=1))
    retry = _placement(handlers, "carol", key, quantity=5)  # other lines: still the first order
    other = _placement(handlers, "dave", uuid.uuid4().hex)
    answered = _commit_together(handlers, [retry, other])
    assert answered[0].id == first.id and answered[0].total_minor == first.total_minor
    assert answered[1].id == other.order.id
    assert store.db.orders.count_documents({"customer_id": "carol"}) == 1
    assert store.db.outbox.count_documents({"type": ORDER_CREATED}) == 2
