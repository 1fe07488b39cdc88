"""Idempotent consumers: a handler's effects and the processed event id are
written in one MongoDB transaction, so a redelivered event changes nothing.
`received_at` is an epoch-seconds float (nx-27017 cannot compare BSON dates)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from mesh.bus import EventConsumer
from mesh.config import MeshConfig
from mesh.events import Event
from mesh.store import Store, UnitOfWork

if TYPE_CHECKING:
    from mesh.server import MeshServer

log = logging.getLogger(__name__)

COLLECTION = "inbox"
Effect = Callable[[UnitOfWork, Event], None]


class Inbox:
    """The `inbox` collection of a consuming service (unique `_id` = event id)."""

    def __init__(self, store: Store, config: MeshConfig, collection: str = COLLECTION) -> None:
        self.store = store
        self.config = config
        self.collection_name = collection
        self._lock = threading.Lock()
        self._next_cleanup = 0.0

    def handle(self, event: Event, effect: Effect) -> bool:
        """Apply `effect` and record the event in one transaction. Returns False
        (and changes nothing) when the event was already processed."""

        def work(uow: UnitOfWork) -> None:
            # the id first: a duplicate fails here, before the effect runs
            uow.db[self.collection_name].insert_one(
                {"_id": event.id, "type": event.type, "received_at": time.time()},
                session=uow.session,
            )
            effect(uow, event)

        try:
            self.store.transaction(work)
        except DuplicateKeyError:
            log.info("event %s (%s) already processed", event.id, event.type)
            return False
        finally:
            self._maybe_cleanup()
        return True

    def seen(self, event_id: str) -> bool:
        return self.store.db[self.collection_name].count_documents({"_id": event_id}, limit=1) > 0

    def cleanup(self) -> int:
        """Delete rows older than `inbox_retention_s`; returns how many."""
        collection = self.store.db[self.collection_name]
        collection.create_index([("received_at", ASCENDING)])
        cutoff = time.time() - self.config.inbox_retention_s
        return collection.delete_many({"received_at": {"$lt": cutoff}}).deleted_count

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
) -> EventConsumer:
    """Consume `patterns` into the service's queue `<queue_prefix><name>`, applying
    `handler(uow, event)` exactly once per event through the inbox. With
    `required`, the service is NOT_SERVING while the consumer is disconnected."""
    inbox = inbox or Inbox(server.store, server.config)

    def handle(event: Event) -> None:
        inbox.handle(event, handler)

    consumer = EventConsumer(server.config, name, patterns, handle)
    server.add_worker(consumer)
    if required:
        server.add_dependency(f"rabbitmq:{name}", consumer.healthy)
    return consumer
