"""Presence across replicas. Each open stream is a `connections` document that its
replica's heartbeat keeps alive; without heartbeats it expires after the TTL (a
crashed replica's streams). A user is online while one unexpired connection is
left. The state last announced per user lives in `presence`; `settle(user)`
compares it with the live connections in one transaction and, on a change, writes
the PresenceChanged event to the outbox and fans it out to the user's rooms, so a
change is announced once even when several replicas settle the same user.

Every replica reaps expired connections on each heartbeat: it settles their users
first and deletes them after, so a reaper that dies midway leaves the work to the
next one. A replica whose own heartbeat came too late (others may have announced
its users offline) re-inserts its reaped connections and settles its users again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from chat_svc import events
from chat_svc.fanout import FanoutPublisher
from chat_svc.repository import CONNECTIONS, PRESENCE, ChatRepository, Document
from mesh.events import Event
from mesh.outbox import Outbox
from mesh.store import Store, UnitOfWork

log = logging.getLogger(__name__)

REAP_BATCH = 1000


class PresenceTracker:
    """This replica's connections, their heartbeat, the reaper of expired ones,
    and who is online anywhere."""

    name = "chat-presence"

    def __init__(
        self, store: Store, outbox: Outbox, publisher: FanoutPublisher, ttl_s: float, beat_s: float
    ) -> None:
        self.replica_id = uuid.uuid4().hex
        self._store = store
        self._connections = store.db[CONNECTIONS]
        self._states = store.db[PRESENCE]
        self._repo = ChatRepository(store.db)
        self._outbox = outbox
        self._publisher = publisher
        self._ttl_s = ttl_s
        self._beat_s = beat_s
        self._local: dict[str, str] = {}  # connection id → user id; changed from worker threads
        self._lock = threading.Lock()
        self._refreshed_at = time.time()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._refreshed_at = time.time()
        self._task = asyncio.create_task(self._heartbeat(), name="chat-presence-heartbeat")

    async def stop(self) -> None:
        """Announce this replica's users offline (unless they are connected elsewhere)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with self._lock:
            local = dict(self._local)
            self._local.clear()
        if local:
            await asyncio.to_thread(self._close, local)

    # streams (blocking: call from a worker thread) --------------------------------

    def connect(self, user_id: str) -> str:
        """Register a stream; announce ONLINE if it is the user's first."""
        connection_id = uuid.uuid4().hex
        self._connections.insert_one(self._connection_doc(connection_id, user_id))
        with self._lock:
            self._local[connection_id] = user_id
        self._try_settle(user_id)
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        """Drop a stream; announce OFFLINE if it was the user's last."""
        with self._lock:
            user_id = self._local.pop(connection_id, None)
        if user_id is not None:
            self._close({connection_id: user_id})

    def online_among(self, user_ids: list[str]) -> list[str]:
        """Which of `user_ids` have a live connection on any replica, sorted."""
        docs = self._connections.find(
            {"user_id": {"$in": user_ids}, "expires_at": {"$gt": time.time()}}, {"user_id": 1}
        )
        return sorted({d["user_id"] for d in docs})

    def _close(self, connections: dict[str, str]) -> None:
        """Expire, settle, then delete: a crash in between leaves expired rows to reap."""
        ids = list(connections)
        self._connections.update_many({"_id": {"$in": ids}}, {"$set": {"expires_at": 0.0}})
        settled = [self._try_settle(user_id) for user_id in sorted(set(connections.values()))]
        if all(settled):  # else the reaper settles and deletes them
            self._connections.delete_many({"_id": {"$in": ids}})

    def _connection_doc(self, connection_id: str, user_id: str) -> Document:
        return {
            "_id": connection_id,
            "user_id": user_id,
            "replica_id": self.replica_id,
            "expires_at": time.time() + self._ttl_s,
        }

    # the announced state ------------------------------------------------------------

    def settle(self, user_id: str) -> None:
        """Make the announced state of `user_id` match its live connections."""
        self._store.transaction(lambda uow: self._settle(uow, user_id))

    def _try_settle(self, user_id: str) -> bool:
        try:
            self.settle(user_id)
            return True
        except Exception:  # a stream must not fail for presence; the reaper retries expired ones
            log.warning("settling the presence of %s failed", user_id, exc_info=True)
            return False

    def _settle(self, uow: UnitOfWork, user_id: str) -> None:
        now = time.time()
        # a write first: concurrent settles of one user conflict and retry (and the
        # embedded MongoDB loses a transaction that starts with a read)
        before = self._states.find_one_and_update(
            {"_id": user_id},
            {"$set": {"settled_at": now}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
            session=uow.session,
        )
        was_online = bool(before and before.get("online"))
        live = {"user_id": user_id, "expires_at": {"$gt": now}}
        online = self._connections.find_one(live, {"_id": 1}, session=uow.session) is not None
        if online == was_online:
            return
        self._states.update_one(
            {"_id": user_id}, {"$set": {"online": online, "changed_at": now}}, session=uow.session
        )
        room_ids = self._repo.room_ids_of(user_id, uow.session)
        event = events.presence_changed(user_id, online, self.replica_id, room_ids, now)
        self._outbox.add(uow, event)
        uow.after_commit(lambda: self._fan_out(room_ids, event))

    def _fan_out(self, room_ids: list[str], event: Event) -> None:
        for room_id in room_ids:
            self._publisher.publish(room_id, event)

    # heartbeat and reaper -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._beat_s)
            try:
                await asyncio.to_thread(self.beat)
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    def beat(self) -> None:
        """Refresh this replica's connections, then reap everyone's expired ones."""
        self._refresh()
        self._reap()

    def _refresh(self) -> None:
        with self._lock:
            local = dict(self._local)
        now = time.time()
        late_s = now - self._refreshed_at
        lapsed = late_s > self._ttl_s  # others may have reaped us meanwhile
        self._refreshed_at = now
        if not local:
            return
        result = self._connections.update_many(
            {"_id": {"$in": list(local)}}, {"$set": {"expires_at": now + self._ttl_s}}
        )
        reaped: dict[str, str] = {}
        if result.matched_count < len(local):
            reaped = self._restore(local)
        if lapsed:
            log.warning("presence heartbeat came %.1f s apart: settling local users again", late_s)
        for user_id in sorted(set((local if lapsed else reaped).values())):
            self.settle(user_id)

    def _restore(self, local: dict[str, str]) -> dict[str, str]:
        """Re-insert local connections another replica reaped while our heartbeat lagged."""
        present = {d["_id"] for d in self._connections.find({"_id": {"$in": list(local)}}, {"_id": 1})}
        with self._lock:  # not the ones closed meanwhile
            missing = {cid: uid for cid, uid in local.items() if cid not in present and cid in self._local}
        if missing:
            with contextlib.suppress(BulkWriteError):
                self._connections.insert_many(
                    [self._connection_doc(cid, uid) for cid, uid in missing.items()], ordered=False
                )
        return missing

    def _reap(self) -> None:
        now = time.time()
        with self._lock:
            local = set(self._local)
        expired = [
            doc
            for doc in self._connections.find({"expires_at": {"$lt": now}}, {"user_id": 1}).limit(REAP_BATCH)
            if doc["_id"] not in local
        ]
        if not expired:
            return
        for user_id in sorted({doc["user_id"] for doc in expired}):
            self.settle(user_id)
        self._connections.delete_many(
            {"_id": {"$in": [d["_id"] for d in expired]}, "expires_at": {"$lt": now}}
        )
