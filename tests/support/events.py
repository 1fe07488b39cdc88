"""Helpers for the event tests: a config built from the isolation fixture, and a
consumer that records every delivery and applies effects through an inbox in
its own database (the consuming service's)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from google.protobuf.wrappers_pb2 import Int64Value

from mesh.bus import EventConsumer
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.inbox import Inbox
from mesh.store import Store, UnitOfWork
from tests.support.processes import RABBITMQ_URL


def event_config(mongo_url: str, isolation: dict[str, str], **overrides: object) -> MeshConfig:
    settings: dict[str, object] = {
        "service_name": "events-test",
        "mongo_url": mongo_url,
        "mongo_db": isolation["MONGO_DB"],
        "rabbitmq_url": RABBITMQ_URL,
        "events_exchange": isolation["EVENTS_EXCHANGE"],
        "queue_prefix": isolation["QUEUE_PREFIX"],
        "outbox_sweep_interval_s": 0.2,
        "outbox_claim_ttl_s": 3.0,
        "bus_reconnect_max_s": 1.0,
        "bus_retry_delays_ms": [100, 200],
        "bus_max_attempts": 3,
        **overrides,
    }
    return MeshConfig.model_validate(settings)


def process_env(config: MeshConfig, **extra: str) -> dict[str, str]:
    """Environment for tests.support.event_relay_proc with the same settings."""
    return {
        "MONGO_URL": config.mongo_url,
        "MONGO_DB": config.database,
        "RABBITMQ_URL": config.rabbitmq_url,
        "EVENTS_EXCHANGE": config.events_exchange,
        "QUEUE_PREFIX": config.queue_prefix,
        "OUTBOX_SWEEP_INTERVAL_S": str(config.outbox_sweep_interval_s),
        "OUTBOX_CLAIM_TTL_S": str(config.outbox_claim_ttl_s),
        "BUS_RECONNECT_MAX_S": str(config.bus_reconnect_max_s),
        **extra,
    }


def ensure_collection(store: Store, name: str) -> None:
    """Create a collection an effect writes to before the first transaction does, as
    services' ensure_indexes do (nx-27017 mishandles one created in an aborted one)."""
    if name not in store.db.list_collection_names():
        store.db.create_collection(name)


class Recorder:
    """Consumes `patterns` and applies each event once through the inbox, in
    batches as `mesh.inbox.consume` does; `fails(event)` makes the effect raise
    for chosen events. `deliveries` holds every event the broker delivered."""

    def __init__(
        self,
        config: MeshConfig,
        name: str = "recorder",
        patterns: tuple[str, ...] = ("#",),
        fails: Callable[[Event], bool] = lambda _event: False,
    ) -> None:
        self.store = Store(config.mongo_url, f"{config.database}_consumer")
        ensure_collection(self.store, "effects")
        self.inbox = Inbox(self.store, config)
        self.fails = fails
        self.deliveries: list[Event] = []
        self.applied: list[str] = []
        self._lock = threading.Lock()
        self.batches: list[int] = []  # the size of each batch handed to the inbox
        self.consumer = EventConsumer(config, name, list(patterns), handle_batch=self._handle_batch)

    def start(self) -> Recorder:
        self.consumer.start_thread()
        assert self.consumer.wait_ready(15), "consumer did not connect"
        return self

    def stop(self) -> None:
        self.consumer.stop_thread()
        self.store.close()

    def subjects(self) -> set[str]:
        with self._lock:
            return set(self.applied)

    def effect_counts(self) -> dict[str, int]:
        return effect_counts(self.store)

    def _handle_batch(self, events: Sequence[Event]) -> list[Exception | None]:
        with self._lock:
            self.deliveries.extend(events)
            self.batches.append(len(events))
        handled = self.inbox.handle_batch(events, self._effect)
        with self._lock:
            self.applied.extend(h.event.subject for h in handled if h.applied)
        return [h.error for h in handled]

    def _effect(self, uow: UnitOfWork, event: Event) -> None:
        if self.fails(event):
            raise RuntimeError(f"poison {event.subject}")
        count_effect(uow, event)


EVENT_TYPE = "test.counted.v1"


def event(n: int, subject: str = "") -> Event:
    """A test event numbered `n` (subject "n/<n>" unless given)."""
    return new_event(EVENT_TYPE, "test", subject or f"n/{n}", Int64Value(value=n))


def effect_counts(store: Store) -> dict[str, int]:
    """How often `count_effect` ran per subject."""
    return {row["_id"]: row["n"] for row in store.db["effects"].find()}


def count_effect(uow: UnitOfWork, event: Event) -> None:
    """A test effect: count the event's subject in `effects`."""
    uow.db["effects"].update_one({"_id": event.subject}, {"$inc": {"n": 1}}, upsert=True, session=uow.session)
