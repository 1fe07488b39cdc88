"""Presence across replicas: one MongoDB document per open stream, refreshed by
its replica's heartbeat and expiring without it (a crashed replica's users fall
offline after the TTL). A user's first connection announces ONLINE, the last
OFFLINE, to the user's rooms through the fan-out exchange."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from pymongo.database import Database
from switchboard.events.v1 import chat_events_pb2

from chat_svc.convert import timestamp
from chat_svc.fanout import FanoutPublisher
from chat_svc.repository import CONNECTIONS, Document
from mesh.events import new_event

log = logging.getLogger(__name__)


class PresenceTracker:
    """Connections of this replica, their heartbeat, and who is online anywhere."""

    name = "chat-presence"

    def __init__(
        self, db: Database[Document], publisher: FanoutPublisher, ttl_s: float, beat_s: float
    ) -> None:
        self.replica_id = uuid.uuid4().hex
        self._connections = db[CONNECTIONS]
        self._publisher = publisher
        self._ttl_s = ttl_s
        self._beat_s = beat_s
        self._local: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat(), name="chat-presence-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        local = list(self._local)
        if local:
            await asyncio.to_thread(self._connections.delete_many, {"_id": {"$in": local}})

    def connect(self, user_id: str, room_ids: list[str]) -> str:
        """Blocking: register a stream; announce ONLINE if it is the user's first."""
        connection_id = uuid.uuid4().hex
        online_before = self._online(user_id)
        self._connections.insert_one(
            {
                "_id": connection_id,
                "user_id": user_id,
                "replica_id": self.replica_id,
                "expires_at": time.time() + self._ttl_s,
            }
        )
        self._local.add(connection_id)
        if not online_before:
            self._announce(user_id, room_ids, chat_events_pb2.PRESENCE_STATE_ONLINE)
        return connection_id

    def disconnect(self, connection_id: str, user_id: str, room_ids: list[str]) -> None:
        """Blocking: drop a stream; announce OFFLINE if it was the user's last."""
        self._local.discard(connection_id)
        self._connections.delete_one({"_id": connection_id})
        if not self._online(user_id):
            self._announce(user_id, room_ids, chat_events_pb2.PRESENCE_STATE_OFFLINE)

    def online_among(self, user_ids: list[str]) -> list[str]:
        """Blocking: which of `user_ids` have a live connection on any replica, sorted."""
        docs = self._connections.find(
            {"user_id": {"$in": user_ids}, "expires_at": {"$gt": time.time()}}, {"user_id": 1}
        )
        return sorted({d["user_id"] for d in docs})

    def _online(self, user_id: str) -> bool:
        query = {"user_id": user_id, "expires_at": {"$gt": time.time()}}
        return self._connections.find_one(query, {"_id": 1}) is not None

    def _announce(self, user_id: str, room_ids: list[str], state: int) -> None:
        now = time.time()
        change = chat_events_pb2.PresenceChanged(
            user_id=user_id,
            state=state,  # type: ignore[arg-type]
            replica_id=self.replica_id,
            room_ids=room_ids,
            change_time=timestamp(now),
        )
        for room_id in room_ids:
            event = new_event("chat.presence_changed.v1", "chat", f"users/{user_id}", change)
            self._publisher.publish(room_id, event)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._beat_s)
            local = list(self._local)
            if not local:
                continue
            try:
                await asyncio.to_thread(
                    self._connections.update_many,
                    {"_id": {"$in": local}},
                    {"$set": {"expires_at": time.time() + self._ttl_s}},
                )
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)
