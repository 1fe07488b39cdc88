"""Statistics documents: one per UTC day (`stats_days`, for UTC queries) and one
per UTC bucket (`stats_buckets`, regrouped into local days for other zones).
Event types become field names, so '.', '$' and '%' are percent-escaped."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from activity_svc.model import Figures
from mesh.store import Document

DAYS = "stats_days"
BUCKETS = "stats_buckets"


def escape_key(name: str) -> str:
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unescape_key(name: str) -> str:
    return name.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


class StatsRepository:
    """Reads and increments the figures; pass `session` inside a unit of work."""

    def __init__(self, db: Database[Document]) -> None:
        self.days: Collection[Document] = db[DAYS]
        self.buckets: Collection[Document] = db[BUCKETS]

    def ensure_indexes(self) -> None:
        self.buckets.create_index([("start_ms", ASCENDING)])

    def add(self, figures: Figures, date: str, bucket_start_ms: int, session: ClientSession) -> None:
        """Add an event's increment to its UTC day and its bucket, creating either
        document on the first event of its day or bucket."""
        update = _increment(figures)
        for collection, key, extra in (
            (self.days, date, {}),
            (self.buckets, bucket_start_ms, {"start_ms": bucket_start_ms}),
        ):
            # Increment first: the document nearly always exists, so one command. Only
            # when it does not, create it, then increment: nx-27017 stores an upserted
            # `$inc` of "counters.x" as a literal dotted key instead of a nested field.
            # Inside the transaction a concurrent creator makes this a write conflict
            # that the unit of work retries.
            if collection.update_one({"_id": key}, update, session=session).matched_count:
                continue
            collection.update_one(
                {"_id": key}, {"$setOnInsert": {**_EMPTY, **extra}}, upsert=True, session=session
            )
            collection.update_one({"_id": key}, update, session=session)

    def utc_days(self, dates: list[str]) -> dict[str, Figures]:
        return {doc["_id"]: _figures(doc) for doc in self.days.find({"_id": {"$in": dates}})}

    def buckets_between(self, start_ms: int, end_ms: int) -> list[tuple[int, Figures]]:
        found = self.buckets.find({"start_ms": {"$gte": start_ms, "$lt": end_ms}})
        return [(int(doc["start_ms"]), _figures(doc)) for doc in found]


_EMPTY: dict[str, Any] = {
    "counters": {},
    "revenue": {},
    "cancelled_revenue": {},
    "orders_placed": 0,
    "orders_cancelled": 0,
    "update_ms": 0,
}


def _increment(figures: Figures) -> dict[str, Any]:
    inc: dict[str, int] = {}
    for name, count in figures.counters.items():
        inc[f"counters.{escape_key(name)}"] = count
    for currency, amount in figures.revenue.items():
        inc[f"revenue.{escape_key(currency)}"] = amount
    for currency, amount in figures.cancelled_revenue.items():
        inc[f"cancelled_revenue.{escape_key(currency)}"] = amount
    if figures.orders_placed:
        inc["orders_placed"] = figures.orders_placed
    if figures.orders_cancelled:
        inc["orders_cancelled"] = figures.orders_cancelled
    return {"$inc": inc, "$max": {"update_ms": figures.update_ms}}


def _figures(document: Document) -> Figures:
    def decoded(name: str) -> dict[str, int]:
        return {unescape_key(k): int(v) for k, v in (document.get(name) or {}).items()}

    return Figures(
        counters=decoded("counters"),
        orders_placed=int(document.get("orders_placed", 0)),
        orders_cancelled=int(document.get("orders_cancelled", 0)),
        revenue=decoded("revenue"),
        cancelled_revenue=decoded("cancelled_revenue"),
        update_ms=int(document.get("update_ms", 0)),
    )
