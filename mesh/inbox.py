"""Idempotent consumers: a handler's effects and the processed event id are
written in one MongoDB transaction, so a redelivered event changes nothing.
A batch of deliveries shares one transaction; when it fails, its events are
applied one by one, so only the event at fault is retried.
`received_at` is an epoch-seconds float (nx-27017 cannot compare BSON dates)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo import ASCENDING
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from mesh.admin import attach_consumer
from mesh.bus import BatchHandler, EventConsumer
from mesh.config import MeshConfig
from mesh.events import Event, traced
from mesh.store import Store, UnitOfWork

if TYPE_CHECKING:
    from mesh.server import MeshServer

log = logging.getLogger(__name__)

COLLECTION = "inbox"
Effect = Callable[[UnitOfWork, Event], None]


class _AlreadyProcessed(Exception):
    """The inbox holds the event's id: it was applied before."""


@dataclass(frozen=True)
class Handled:
    """What became of one event of a batch: applied now, already processed
    (`applied` False, no error), or failed with `error` (nothing written)."""

    event: Event
    applied: bool
    error: Exception | None = None


class Inbox:
    """The `inbox` collection of a consuming service (unique `_id` = event id)."""

    def __init__(self, store: Store, config: MeshConfig, collection: str = COLLECTION) -> None:
        self.store = store
        self.config = config
        self.collection_name = collection
        self._lock = threading.Lock()
        self._next_cleanup = 0.0
        self._collection_ready = False

    def handle(self, event: Event, effect: Effect) -> bool:
        """Apply `effect` and record the event in one transaction. Returns False
        (and changes nothing) when the event was already processed."""
        self._ensure_collection()

        def work(uow: UnitOfWork) -> None:
            # the id first: a duplicate fails here, before the effect runs
            try:
                uow.db[self.collection_name].insert_one(
                    {"_id": event.id, "type": event.type, "received_at": time.time()},
                    session=uow.session,
                )
            except DuplicateKeyError as exc:
                raise _AlreadyProcessed from exc
            effect(uow, event)  # its own DuplicateKeyError is a failure, not a duplicate event

        try:
            self.store.transaction(work)
        except _AlreadyProcessed:
            log.info("event %s (%s) already processed", event.id, event.type)
            return False
        finally:
            self._maybe_cleanup()
        return True

    def handle_batch(self, events: Sequence[Event], effect: Effect) -> list[Handled]:
        """Apply `effect` to every event not processed before, and record them, in
        one transaction. If it fails (an effect raised, a conflict), apply the
        events one by one instead, so the others commit and only the culprit
        fails. Outcomes are in the order of `events`."""
        if len(events) > 1:
            try:
                self._ensure_collection()  # inside: a store outage is an outcome, not a raise
                applied = self.store.transaction(lambda uow: self._apply_unseen(uow, events, effect))
            except ConnectionFailure as exc:  # one by one would fail the same way, slowly
                return [Handled(event, False, exc) for event in events]
            except Exception as exc:
                log.info("a batch of %d events failed (%s); applying them one by one", len(events), exc)
            else:
                self._maybe_cleanup()
                return [Handled(event, index in applied) for index, event in enumerate(events)]
        return [self._handle_one(event, effect) for event in events]

    def batch_handler(self, effect: Effect) -> BatchHandler:
        """`effect` through this inbox, as an EventConsumer's `handle_batch`."""

        def handle_batch(events: Sequence[Event]) -> list[Exception | None]:
            return [handled.error for handled in self.handle_batch(events, effect)]

        return handle_batch

    def _apply_unseen(self, uow: UnitOfWork, events: Sequence[Event], effect: Effect) -> set[int]:
        """In `uow`: record and apply the events whose id the inbox does not hold
        (the first of several copies in the batch); returns their positions."""
        collection = uow.db[self.collection_name]
        ids = list({event.id for event in events})
        seen = {row["_id"] for row in collection.find({"_id": {"$in": ids}}, {"_id": 1}, session=uow.session)}
        unseen: dict[str, int] = {}
        for index, event in enumerate(events):
            if event.id not in seen:
                unseen.setdefault(event.id, index)
        if not unseen:
            return set()
        now = time.time()
        # the ids first: one processed meanwhile (another replica) fails the batch before any effect
        collection.insert_many(
            [{"_id": events[i].id, "type": events[i].type, "received_at": now} for i in unseen.values()],
            session=uow.session,
        )
        for index in unseen.values():
            with traced(events[index]):
                effect(uow, events[index])
        return set(unseen.values())

    def _ensure_collection(self) -> None:
        # nx-27017 gaps: a collection first created inside a transaction that aborts
        # (an effect raised) breaks later writes to it, and a transaction that reads a
        # collection before an insert creates it cannot roll that insert back. So
        # create it (with the index cleanup needs) before the first transaction.
        if not self._collection_ready:
            self.store.db[self.collection_name].create_index([("received_at", ASCENDING)])
            self._collection_ready = True

    def _handle_one(self, event: Event, effect: Effect) -> Handled:
        with traced(event):
            try:
                return Handled(event, self.handle(event, effect))
            except Exception as exc:
                return Handled(event, False, exc)

    def seen(self, event_id: str) -> bool:
        # find_one, not count_documents: nx-27017 cannot count a collection that does not exist
        return self.store.db[self.collection_name].find_one({"_id": event_id}, {"_id": 1}) is not None

    def cleanup(self) -> int:
        """Delete rows older than `inbox_retention_s`; returns how many."""
        collection = self.store.db[self.collection_name]
        collection.create_index([("received_at", ASCENDING)])
        cutoff = time.time() - self.config.inbox_retention_s
        return collection.delete_many({"received_at": {"$lt": cutoff}}).deleted_count

    def adopt_legacy_rows(self, time_field: str) -> int:
        """Give rows a service wrote before it used this inbox (same collection and
        `_id`, its own epoch-seconds `time_field`) a `received_at`, so retention
        deletes them too. Idempotent (only rows without `received_at` change);
        returns how many changed."""
        self._ensure_collection()
        collection = self.store.db[self.collection_name]
        adopted = 0
        legacy = collection.find({"received_at": {"$exists": False}}, {"_id": 1, time_field: 1})
        for row in legacy:
            when = row.get(time_field)
            # a row without a usable time starts its retention now: kept, never lost early
            received = float(when) if isinstance(when, int | float) else time.time()
            result = collection.update_one(
                {"_id": row["_id"], "received_at": {"$exists": False}},
                {"$set": {"received_at": received}, "$unset": {time_field: ""}},
            )
            adopted += result.modified_count
        return adopted

    def _maybe_cleanup(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_cleanup:
                return
            self._next_cleanup = now + self.config.inbox_cleanup_interval_s
        try:
            self.cleanup()
        except PyMongoError as exc:
            log.warning("inbox cleanup failed: %s", exc)


def consume(
    server: MeshServer,
    name: str,
    patterns: Sequence[str],
    handler: Effect,
    *,
    inbox: Inbox | None = None,
    required: bool = False,
    legacy_time_field: str | None = None,
) -> EventConsumer:
    """Consume `patterns` into the service's queue `<queue_prefix><name>`, applying
    `handler(uow, event)` exactly once per event through the inbox, a batch of
    deliveries per transaction. With `required`, the service is NOT_SERVING while
    the consumer is disconnected. `legacy_time_field` names the time field of rows
    the service wrote before it used this inbox: they are adopted at start-up
    (`Inbox.adopt_legacy_rows`). The queue's dead letters are served by the
    service's EventAdminService."""
    inbox = inbox or Inbox(server.store, server.config)
    if legacy_time_field:
        server.add_worker(LegacyInboxRows(inbox, legacy_time_field))  # before the consumer starts
    consumer = EventConsumer(server.config, name, patterns, handle_batch=inbox.batch_handler(handler))
    server.add_worker(consumer)
    if required:
        server.add_dependency(f"rabbitmq:{name}", consumer.healthy)
    attach_consumer(server, consumer)
    return consumer


class LegacyInboxRows:
    """A start-up Worker: `Inbox.adopt_legacy_rows` once, before the consumer starts,
    then one cleanup, so adopted rows past the retention go at once."""

    name = "inbox-migration"

    def __init__(self, inbox: Inbox, time_field: str) -> None:
        self.inbox = inbox
        self.time_field = time_field

    async def start(self) -> None:
        try:
            adopted = await asyncio.to_thread(self.inbox.adopt_legacy_rows, self.time_field)
            await asyncio.to_thread(self.inbox.cleanup)
        except PyMongoError as exc:  # the store is down: the next start tries again, nothing is lost
            log.warning("inbox migration skipped: %s", exc)
            return
        if adopted:
            log.info("inbox: %d legacy rows now under retention", adopted)

    async def stop(self) -> None:
        return None
