"""This replica's local listeners: which open streams follow which rooms, the
room bindings of the fan-out queue (bound for the first listener, unbound after
the last), and the periodic per-room latest-sequence check that lets readers
notice a lost fan-out publish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TypeAlias

from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.events.v1 import chat_events_pb2

from chat_svc.convert import message_from_posted
from chat_svc.fanout import FanoutSubscriber
from chat_svc.repository import ChatRepository
from mesh.events import Event, unpack

log = logging.getLogger(__name__)

POSTED = "chat.message_posted.v1"
PRESENCE = "chat.presence_changed.v1"


@dataclass(frozen=True)
class LatestSequence:
    """The room's latest sequence as read from the store (gap check)."""

    room_id: str
    sequence: int


@dataclass(frozen=True)
class Presence:
    """A user came online or went offline, seen in one room."""

    room_id: str
    user_id: str
    state: int
    time_s: float


Item: TypeAlias = pb.Message | LatestSequence | Presence


class Listener:
    """One open Subscribe stream's inbox: bounded; overflow ends the stream."""

    def __init__(self, user_id: str, capacity: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=capacity)
        self.overflowed = False

    def offer(self, item: Item) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    """Room → local listeners; fed by the fan-out queue and the local sender."""

    def __init__(self, fanout: FanoutSubscriber, repo: ChatRepository, check_interval_s: float) -> None:
        self._fanout = fanout
        self._repo = repo
        self._check_interval_s = check_interval_s
        self._rooms: dict[str, set[Listener]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checker: asyncio.Task[None] | None = None

    @property
    def bound_rooms(self) -> set[str]:
        return set(self._rooms)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._checker = asyncio.create_task(self._check_latest(), name="chat-gap-check")

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker

    async def add(self, room_id: str, listener: Listener, bind_timeout_s: float = 5.0) -> None:
        listeners = self._rooms.setdefault(room_id, set())
        first = not listeners
        listeners.add(listener)
        if first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(self._fanout.bind(room_id)), bind_timeout_s)

    def remove(self, room_id: str, listener: Listener) -> None:
        listeners = self._rooms.get(room_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._rooms[room_id]
            self._fanout.unbind(room_id)

    # deliveries (any thread) ----------------------------------------------------------

    def deliver_threadsafe(self, room_id: str, event: Event) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver_event, room_id, event)

    def deliver_local_threadsafe(self, message: pb.Message) -> None:
        """The sending replica's own listeners hear at once (duplicates are dropped by sequence)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._offer, message.room_id, message)

    def _deliver_event(self, room_id: str, event: Event) -> None:
        try:
            if event.type == POSTED:
                self._offer(room_id, message_from_posted(unpack(event, chat_events_pb2.ChatMessagePosted)))
            elif event.type == PRESENCE:
                change = unpack(event, chat_events_pb2.PresenceChanged)
                when = change.change_time.seconds + change.change_time.nanos / 1e9
                self._offer(room_id, Presence(room_id, change.user_id, int(change.state), when))
        except Exception:
            log.exception("dropping an undecodable chat event %s", event.id)

    def _offer(self, room_id: str, item: Item) -> None:
        for listener in list(self._rooms.get(room_id, ())):
            listener.offer(item)

    async def _check_latest(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval_s)
            rooms = list(self._rooms)
            if not rooms:
                continue
            try:
                latest = await asyncio.to_thread(self._repo.last_sequences, rooms)
            except Exception:
                log.warning("latest-sequence check failed", exc_info=True)
                continue
            for room_id, sequence in latest.items():
                self._offer(room_id, LatestSequence(room_id, sequence))
