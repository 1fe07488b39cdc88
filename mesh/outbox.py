"""Transactional outbox: events are written in the same MongoDB transaction as
the state change (`Outbox.add`) and published by `OutboxRelay`, which claims
rows with a lease so replicas never publish the same row twice.

Times are epoch-second floats, not BSON dates: the embedded nx-27017 server
cannot compare BSON datetimes in queries.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge, Histogram
from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from mesh.batching import take_batch
from mesh.bus import BrokerUnavailable, Publisher
from mesh.config import MeshConfig
from mesh.events import Event, from_bytes, to_bytes
from mesh.paging import keyset_query, keyset_sort
from mesh.store import Document, Store, UnitOfWork

if TYPE_CHECKING:
    from mesh.server import MeshServer

log = logging.getLogger(__name__)

COLLECTION = "outbox"
PENDING = "PENDING"
PUBLISHED = "PUBLISHED"
FAILED = "FAILED"

OUTBOX_PENDING = Gauge("outbox_pending", "Outbox rows waiting to be published")
OUTBOX_FAILED = Gauge("outbox_failed", "Outbox rows that gave up (replay with the admin RPC)")
OUTBOX_PUBLISH_SECONDS = Histogram(
    "outbox_publish_seconds",
    "From handing a row to the broker to its confirm",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_LAG_SECONDS = Histogram(
    "outbox_lag_seconds",
    "From writing a row to the broker's confirm",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class Outbox:
    """The `outbox` collection of a service. `add(uow, event)` writes a row inside
    the caller's transaction and, once it commits, hands the id to the relay.

    Queries on `status` say `{"$eq": ...}`: the same match on MongoDB, while
    nx-27017 turns an implicit equality into a clause no index serves (it also
    matches arrays), a scan of the whole collection that holds the database."""

    def __init__(self, store: Store, config: MeshConfig) -> None:
        self.store = store
        self.config = config
        self.collection: Collection[Document] = store.db[COLLECTION]
        # rows are written already leased to this process's relay, which publishes
        # them from memory; other replicas' sweeps take over when the lease expires
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # committed rows, handed to the relay as written: it publishes them without
        # reading them back (None only wakes it)
        self._ready: queue.SimpleQueue[Document | None] = queue.SimpleQueue()

    def add(self, uow: UnitOfWork, event: Event) -> None:
        self.add_many(uow, [event])

    def add_many(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """`add` for several events with one insert (a batch of state changes)."""
        if not events:
            return
        now = time.time()
        rows = [self._row(event, now) for event in events]
        uow.db[COLLECTION].insert_many(rows, session=uow.session)

        def ready() -> None:
            for row in rows:
                self._ready.put(row)

        uow.after_commit(ready)

    def _row(self, event: Event, now: float) -> Document:
        return {
            "_id": event.id,
            "type": event.type,
            "subject": event.subject,
            "payload": to_bytes(event),
            "status": PENDING,
            "attempts": 0,
            "last_error": "",
            "created_at": now,
            "updated_at": now,
            "published_at": None,
            "claim_owner": self.owner,
            "claim_expires_at": now + self.config.outbox_claim_ttl_s,
        }

    def ensure_indexes(self) -> None:
        self.collection.create_index([("status", ASCENDING), ("created_at", ASCENDING)])
        self.collection.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])

    def take_ready(self, max_count: int, timeout_s: float) -> list[Document]:
        """Rows committed since the last call, as written (waits up to `timeout_s`
        for the first)."""
        return take_batch(self._ready, max_count, timeout_s)

    def wake(self) -> None:
        """Nudge a relay waiting in `take_ready`."""
        self._ready.put(None)

    # admin --------------------------------------------------------------------

    def list_rows(
        self, status: str | None, limit: int, after: tuple[float, str] | None = None
    ) -> list[Document]:
        """Rows oldest first, `after` the (created_at, id) of the previous page's last row."""
        matching = {"status": {"$eq": status}} if status else {}
        query = keyset_query(matching, "created_at", after, descending=False)
        cursor = (
            self.collection.find(query, {"payload": 0})
            .sort(keyset_sort("created_at", descending=False))
            .limit(limit)
        )
        return list(cursor)

    def replay_failed(self, ids: Sequence[str] = (), all_failed: bool = False) -> int:
        """Set FAILED rows back to PENDING with attempts reset; returns how many."""
        query: dict[str, Any] = {"status": {"$eq": FAILED}}
        if not all_failed:
            if not ids:
                return 0
            query["_id"] = {"$in": list(ids)}
        chosen = [row["_id"] for row in self.collection.find(query, {"_id": 1})]
        if not chosen:
            return 0
        result = self.collection.update_many(
            {"_id": {"$in": chosen}, "status": {"$eq": FAILED}},
            {
                "$set": {
                    "status": PENDING,
                    "attempts": 0,
                    "claim_owner": None,
                    "claim_expires_at": 0.0,
                    "updated_at": time.time(),
                }
            },
        )
        self.wake()  # unleased now: the relay's next sweep takes them
        return result.modified_count


def encode_page_token(row: Document) -> str:
    return base64.urlsafe_b64encode(f"{row['created_at']!r}|{row['_id']}".encode()).decode()


def decode_page_token(token: str) -> tuple[float, str]:
    created_at, _, row_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
    return float(created_at), row_id


@dataclass
class _Outcome:
    published: list[str]
    failed: list[tuple[Document, str]]
    unavailable: list[str]


class OutboxRelay:
    """A Worker that publishes outbox rows from its own thread: at once from the
    outbox's in-memory queue, and by sweeping PENDING rows at start-up and every
    `outbox_sweep_interval_s`. It owns (starts and closes) its publisher."""

    name = "outbox-relay"

    def __init__(self, store: Store, outbox: Outbox, publisher: Publisher, config: MeshConfig) -> None:
        self.store = store
        self.outbox = outbox
        self.publisher = publisher
        self.config = config
        self.owner = outbox.owner
        self._collection = outbox.collection
        self._stopping = threading.Event()
        self._sweep_now = threading.Event()
        self._thread: threading.Thread | None = None
        # Confirmed, not yet marked PUBLISHED: still PENDING and leased to this relay,
        # so no other relay takes them; a crash before the mark publishes them again
        # once the lease runs out (at least once, as for a crash before the confirm).
        self._confirmed: list[str] = []
        self._mark_at = math.inf

    def healthy(self) -> bool:
        return self.publisher.healthy()

    async def start(self) -> None:
        self.start_thread()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_thread)

    def start_thread(self) -> OutboxRelay:
        if self._thread is None:
            self.publisher.on_ready(self._sweep_now.set)
            self.publisher.start()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop_thread(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        self.outbox.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.publisher.close()

    # the relay thread ----------------------------------------------------------

    def _run(self) -> None:
        indexed = False
        next_sweep = 0.0
        next_cleanup = time.monotonic()
        while not self._stopping.is_set():
            try:
                if not indexed:
                    self.outbox.ensure_indexes()
                    indexed = True
                now = time.monotonic()
                if now >= self._mark_at:  # first: a failing sweep or cleanup must not hold it up
                    self.mark_published()
                if now >= next_sweep or self._sweep_now.is_set():
                    self._sweep_now.clear()
                    self.sweep()
                    next_sweep = now + self.config.outbox_sweep_interval_s
                if now >= next_cleanup:
                    self.cleanup()
                    next_cleanup = now + self.config.outbox_cleanup_interval_s
                wait_s = min(next_sweep, next_cleanup, self._mark_at) - time.monotonic()
                rows = self.outbox.take_ready(self.config.outbox_batch_size, wait_s)
                if rows and self.publisher.healthy():
                    self._publish(still_leased(rows))
                elif rows:  # the broker is away: let the sweep after reconnecting have them
                    self._release([row["_id"] for row in rows])
            except PyMongoError as exc:
                log.warning("outbox relay: database error: %s", exc)
                self._stopping.wait(1.0)
            except Exception:
                log.exception("outbox relay iteration failed")
                self._stopping.wait(1.0)
        self.mark_published()  # what stays unmarked goes out again after its lease

    def sweep(self) -> int:
        """Publish claimable PENDING rows, oldest first, batch by batch; returns the count."""
        published = 0
        while not self._stopping.is_set() and self.publisher.healthy():
            rows = self._claim()
            if not rows:
                break
            outcome = self._publish(rows)
            published += len(outcome.published)
            if outcome.unavailable or len(rows) < self.config.outbox_batch_size:
                break
        return published

    def cleanup(self) -> None:
        """Delete PUBLISHED rows past retention and refresh the gauges."""
        cutoff = time.time() - self.config.outbox_retention_s
        self._collection.delete_many({"status": {"$eq": PUBLISHED}, "updated_at": {"$lt": cutoff}})
        counts = status_counts(self._collection, (PENDING, FAILED))
        OUTBOX_PENDING.set(counts[PENDING])
        OUTBOX_FAILED.set(counts[FAILED])

    def _claim(self) -> list[Document]:
        """Sweeping: lease the oldest unleased PENDING rows with one conditional
        update_many, atomic per row, so a row is only ever leased to one relay; then
        read back the rows carrying this lease's token."""
        now = time.time()
        # no $or with claim_owner: nx-27017 answers $or by a full scan. Rows this relay
        # leased and then could not publish are released instead (see `_release`).
        claimable = {"status": {"$eq": PENDING}, "claim_expires_at": {"$lte": now}}
        candidates = [
            row["_id"]
            for row in self._collection.find(claimable, {"_id": 1})
            .sort("created_at", ASCENDING)
            .limit(self.config.outbox_batch_size)
        ]
        if not candidates:
            return []
        token = uuid.uuid4().hex  # not the expiry: floats do not round-trip exactly in nx-27017
        self._collection.update_many(
            {**claimable, "_id": {"$in": candidates}},
            {
                "$set": {
                    "claim_owner": self.owner,
                    "claim_token": token,
                    "claim_expires_at": now + self.config.outbox_claim_ttl_s,
                }
            },
        )
        return self._rows({"_id": {"$in": candidates}, "claim_token": token})

    def _rows(self, query: dict[str, Any]) -> list[Document]:
        return sorted(self._collection.find(query), key=lambda row: row["created_at"])

    def _publish(self, rows: list[Document]) -> _Outcome:
        """Publish every row, wait for the confirms together, record the outcomes in bulk."""
        outcome = _Outcome([], [], [])
        if not rows:
            return outcome
        futures: list[tuple[Document, Future[None]]] = []
        for row in rows:
            try:
                event = from_bytes(row["payload"])
            except ValueError as exc:
                outcome.failed.append((row, f"undecodable payload: {exc}"))
                continue
            futures.append((row, self._timed_publish(event, row["created_at"])))
        wait([f for _, f in futures], timeout=self.config.bus_publish_timeout_s)
        for row, future in futures:
            if not future.done():
                outcome.unavailable.append(row["_id"])
            elif future.exception() is None:
                outcome.published.append(row["_id"])
            elif isinstance(future.exception(), BrokerUnavailable):
                outcome.unavailable.append(row["_id"])
            else:
                outcome.failed.append((row, str(future.exception()) or type(future.exception()).__name__))
        self._record(outcome)
        return outcome

    def _timed_publish(self, event: Event, created_at: float) -> Future[None]:
        started = time.perf_counter()
        future = self.publisher.publish(event)

        def observe(done: Future[None]) -> None:
            if done.exception() is None:
                OUTBOX_PUBLISH_SECONDS.observe(time.perf_counter() - started)
                OUTBOX_LAG_SECONDS.observe(max(time.time() - created_at, 0.0))

        future.add_done_callback(observe)
        return future

    def mark_published(self) -> None:
        """Mark the confirmed rows PUBLISHED with one write (on failure, keep them for
        the next round: still leased here, nobody else publishes them meanwhile)."""
        self._mark_at = math.inf
        ids, self._confirmed = self._confirmed, []
        if not ids:
            return
        now = time.time()
        try:
            # whoever holds the claim now: the broker has it, so it must not go out again
            self._collection.update_many(
                {"_id": {"$in": ids}, "status": {"$eq": PENDING}},
                {
                    "$set": {
                        "status": PUBLISHED,
                        "published_at": now,
                        "updated_at": now,
                        "claim_owner": None,
                        "claim_expires_at": 0.0,
                    }
                },
            )
        except PyMongoError as exc:  # still leased here: the next round marks them
            log.warning("outbox relay: marking published rows failed: %s", exc)
            self._confirmed[:0] = ids
            self._mark_at = time.monotonic() + self.config.outbox_mark_interval_s

    def _record(self, outcome: _Outcome) -> None:
        now = time.time()
        if outcome.unavailable:  # the broker is away: not the row's fault, no attempt counted
            self._release(outcome.unavailable)
        if outcome.failed:
            self._collection.bulk_write([self._failure(row, error, now) for row, error in outcome.failed])
            for row, error in outcome.failed:
                log.warning("outbox row %s (%s) failed: %s", row["_id"], row["type"], error)
        if outcome.published:
            self._confirmed.extend(outcome.published)
            interval = self.config.outbox_mark_interval_s
            if interval == 0 or len(self._confirmed) >= self.config.outbox_batch_size:
                self.mark_published()
            else:
                self._mark_at = min(self._mark_at, time.monotonic() + interval)

    def _release(self, ids: list[str]) -> None:
        self._collection.update_many(
            {"_id": {"$in": ids}, "status": {"$eq": PENDING}, "claim_owner": self.owner},
            {"$set": {"claim_owner": None, "claim_expires_at": 0.0}},
        )

    def _failure(self, row: Document, error: str, now: float) -> UpdateOne:
        attempts = int(row.get("attempts", 0)) + 1
        gave_up = attempts >= self.config.outbox_max_attempts
        retry_in = min(
            self.config.outbox_sweep_interval_s * 2 ** (attempts - 1), self.config.outbox_retry_max_s
        )
        return UpdateOne(
            {"_id": row["_id"], "claim_owner": self.owner, "status": {"$eq": PENDING}},
            {
                "$set": {
                    "status": FAILED if gave_up else PENDING,
                    "attempts": attempts,
                    "last_error": error[:1000],
                    "updated_at": now,
                    "claim_owner": None,
                    # the lease expiry doubles as "not before": the next attempt backs off
                    "claim_expires_at": 0.0 if gave_up else now + retry_in,
                }
            },
        )


def status_counts(collection: Collection[Document], statuses: Sequence[str]) -> dict[str, int]:
    """Rows per status, one small aggregation each (served by the status index). Not
    `count_documents`: nx-27017 answers it by loading every row (0.8 s at 20,000 rows,
    holding the database meanwhile); this takes about 2 ms there."""
    counts = {}
    for status in statuses:
        found = list(collection.aggregate([{"$match": {"status": {"$eq": status}}}, {"$count": "n"}]))
        counts[status] = int(found[0]["n"]) if found else 0
    return counts


def still_leased(rows: list[Document]) -> list[Document]:
    """Rows handed over in memory (written already leased to this process), oldest
    first, without those whose lease ran out meanwhile: another relay's sweep may
    have them now, and this one's next sweep will if nobody did."""
    now = time.time()
    return sorted((row for row in rows if row["claim_expires_at"] > now), key=lambda row: row["created_at"])


def install(server: MeshServer, name: str = "outbox") -> Outbox:
    """Give a service an outbox and the relay that publishes it, in one call:
    `outbox = mesh.outbox.install(server)`; then `outbox.add(uow, event)` in
    handlers. The relay's publisher does not gate health: writes go on while the
    broker is away and the relay catches up afterwards."""
    from mesh.admin import attach_outbox  # here: mesh.admin imports this module

    outbox = Outbox(server.store, server.config)
    publisher = Publisher(server.config, name=name)
    server.add_worker(OutboxRelay(server.store, outbox, publisher, server.config))
    attach_outbox(server, outbox)  # every outbox is served to operators (EventAdminService)
    return outbox
