"""The `orders` collection: Order ↔ MongoDB document, the idempotency index and
the newest-first listing. Times are epoch-ms integers (nx-27017 cannot compare
BSON dates; real MongoDB is happy with numbers too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from mesh.paging import keyset_query, keyset_sort
from mesh.store import Document
from order_svc.model import Line, Order, OrderStatus

COLLECTION = "orders"


@dataclass(frozen=True)
class OrderQuery:
    """Filters of ListOrders (all optional, combined with AND)."""

    customer_id: str | None = None
    status: OrderStatus | None = None
    create_start_ms: int | None = None
    create_end_ms: int | None = None


@dataclass(frozen=True)
class Cursor:
    """Position after the last order of a page (newest-first order)."""

    create_ms: int
    order_id: str


class OrderRepository:
    """Orders of one database; pass `session` inside a unit of work."""

    def __init__(self, db: Database[Document]) -> None:
        self.collection: Collection[Document] = db[COLLECTION]

    def ensure_indexes(self) -> None:
        # one order per (customer, key): concurrent duplicates collide here
        self.collection.create_index(
            [("customer_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True, name="idempotency"
        )
        # `_id` is left out of these (it would be the natural tie-breaker): nx-27017
        # refuses every insert into a collection with an index naming `_id`
        self.collection.create_index([("customer_id", ASCENDING), ("create_ms", DESCENDING)])
        self.collection.create_index([("create_ms", DESCENDING)])

    def add(self, order: Order, session: ClientSession | None = None) -> None:
        self.collection.insert_one(to_document(order), session=session)

    def add_many(self, orders: list[Order], session: ClientSession | None = None) -> None:
        self.collection.insert_many([to_document(order) for order in orders], session=session)

    def get(self, order_id: str, session: ClientSession | None = None) -> Order | None:
        document = self.collection.find_one({"_id": order_id}, session=session)
        return None if document is None else from_document(document)

    def by_idempotency_key(
        self, customer_id: str, key: str, session: ClientSession | None = None
    ) -> Order | None:
        document = self.collection.find_one(
            {"customer_id": customer_id, "idempotency_key": key}, session=session
        )
        return None if document is None else from_document(document)

    def save_if_unchanged(self, order: Order, previous_version: int, session: ClientSession) -> bool:
        """Optimistic write: only if nobody changed the order since it was read."""
        result = self.collection.replace_one(
            {"_id": order.id, "version": previous_version}, to_document(order), session=session
        )
        return result.modified_count == 1

    def list(self, query: OrderQuery, after: Cursor | None, limit: int) -> list[Order]:
        """Up to `limit` orders, newest first, strictly after `after`."""
        conditions: list[dict[str, Any]] = []
        if query.customer_id is not None:
            conditions.append({"customer_id": query.customer_id})
        else:
            # nx-27017 leaks a {"level": "snapshot"} document into a collection whose
            # first write in a transaction is an insert: match real orders only
            conditions.append({"customer_id": {"$exists": True}})
        if query.status is not None:
            conditions.append({"status": query.status.value})
        if query.create_start_ms is not None:
            conditions.append({"create_ms": {"$gte": query.create_start_ms}})
        if query.create_end_ms is not None:
            conditions.append({"create_ms": {"$lt": query.create_end_ms}})
        filters = {"$and": conditions} if conditions else {}
        position = (after.create_ms, after.order_id) if after is not None else None
        found = (
            self.collection.find(keyset_query(filters, "create_ms", position))
            .sort(keyset_sort("create_ms"))
            .limit(limit)
        )
        return [from_document(document) for document in found]


def to_document(order: Order) -> Document:
    return {
        "_id": order.id,
        "customer_id": order.customer_id,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price_minor": line.unit_price_minor}
            for line in order.lines
        ],
        "currency_code": order.currency_code,
        "total_minor": order.total_minor,
        "idempotency_key": order.idempotency_key,
        "status": order.status.value,
        "create_ms": order.create_ms,
        "update_ms": order.update_ms,
        "cancel_ms": order.cancel_ms,
        "cancelled_by": order.cancelled_by,
        "cancel_reason": order.cancel_reason,
        "version": order.version,
    }


def from_document(document: Document) -> Order:
    return Order(
        id=document["_id"],
        customer_id=document["customer_id"],
        lines=tuple(
            Line(line["sku"], int(line["quantity"]), int(line["unit_price_minor"]))
            for line in document["lines"]
        ),
        currency_code=document["currency_code"],
        idempotency_key=document["idempotency_key"],
        create_ms=int(document["create_ms"]),
        update_ms=int(document["update_ms"]),
        status=OrderStatus(document["status"]),
        cancel_ms=None if document.get("cancel_ms") is None else int(document["cancel_ms"]),
        cancelled_by=document.get("cancelled_by", ""),
        cancel_reason=document.get("cancel_reason", ""),
        version=int(document.get("version", 1)),
    )
