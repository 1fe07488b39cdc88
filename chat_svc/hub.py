"""This replica's local listeners: which open streams follow which rooms, the
room bindings of the fan-out queue (bound for the first listener, unbound after
the last), and two periodic store reads made once per replica, not per stream:
the per-room latest-sequence check that lets readers notice a lost fan-out
publish, and the rooms of every listening user (joins and leaves), which also
paces the streams' heartbeats so no stream needs a timer of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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


@dataclass(frozen=True)
class Membership:
    """The listener's user's rooms, as read from the store at `read_at` (monotonic);
    None when the read failed (the item still paces heartbeats)."""

    room_ids: frozenset[str] | None
    read_at: float


Item: TypeAlias = pb.Message | LatestSequence | Presence | Membership


class SeenSequences:
    """The sequences of one room this hub has offered already: the sending replica
    hears its own messages twice (at commit, then from the exchange), and the
    second copy must not wake every local stream."""

    MAX_AHEAD = 1000  # sequences kept above a gap that never closes (a lost publish)
    REORDER_WINDOW = 100  # how far below the first one seen a sequence may still arrive

    def __init__(self) -> None:
        self.floor: int | None = None  # every sequence up to it was offered (or never will be)
        self.ahead: set[int] = set()

    def first_time(self, sequence: int) -> bool:
        if self.floor is None:
            self.floor = max(0, sequence - 1 - self.REORDER_WINDOW)
        if sequence <= self.floor or sequence in self.ahead:
            return False
        self.ahead.add(sequence)
        if len(self.ahead) > self.MAX_AHEAD:  # give up on the gap: streams fill it from the store
            self.floor = min(self.ahead) - 1
        while self.floor + 1 in self.ahead:
            self.floor += 1
            self.ahead.discard(self.floor)
        return True


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

    def __init__(
        self,
        fanout: FanoutSubscriber,
        repo: ChatRepository,
        check_interval_s: float,
        membership_interval_s: float,
    ) -> None:
        self._fanout = fanout
        self._repo = repo
        self._check_interval_s = check_interval_s
        self._membership_interval_s = membership_interval_s
        self._rooms: dict[str, set[Listener]] = {}
        self._seen: dict[str, SeenSequences] = {}
        self._listeners: set[Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def bound_rooms(self) -> set[str]:
        return set(self._rooms)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._check_latest(), name="chat-gap-check"),
            asyncio.create_task(self._check_membership(), name="chat-membership-check"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def open(self, listener: Listener) -> None:
        """A stream started: it gets Membership items from now on."""
        self._listeners.add(listener)

    def close(self, listener: Listener) -> None:
        self._listeners.discard(listener)

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
            self._seen.pop(room_id, None)
            self._fanout.unbind(room_id)

    # deliveries (any thread) ----------------------------------------------------------

    def deliver_threadsafe(self, room_id: str, event: Event) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver_event, room_id, event)

    def deliver_local_threadsafe(self, message: pb.Message) -> None:
        """The sending replica's own listeners hear at once (duplicates are dropped by sequence)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._offer_message, message)

    def _deliver_event(self, room_id: str, event: Event) -> None:
        try:
            if event.type == POSTED:
                self._offer_message(message_from_posted(unpack(event, chat_events_pb2.ChatMessagePosted)))
            elif event.type == PRESENCE:
                change = unpack(event, chat_events_pb2.PresenceChanged)
                when = change.change_time.seconds + change.change_time.nanos / 1e9
                self._offer(room_id, Presence(room_id, change.user_id, int(change.state), when))
        except Exception:
            log.exception("dropping an undecodable chat event %s", event.id)

    def _offer_message(self, message: pb.Message) -> None:
        room_id = message.room_id
        if room_id not in self._rooms:
            return
        seen = self._seen.get(room_id)
        if seen is None:
            seen = self._seen[room_id] = SeenSequences()
        if seen.first_time(message.sequence):
            self._offer(room_id, message)

    def _offer(self, room_id: str, item: Item) -> None:
        for listener in list(self._rooms.get(room_id, ())):
            listener.offer(item)

    async def _check_latest(self) -> None:
        """Each period, tell listeners the latest sequences read one period earlier:
        a message committed by then has had a whole period to arrive through the
        fan-out, so a reader still behind it lost it (and fills from the store),
        while messages merely in flight never cost a store read per reader."""
        previous: dict[str, int] = {}
        while True:
            await asyncio.sleep(self._check_interval_s)
            rooms = list(self._rooms)
            if not rooms:
                previous = {}
                continue
            try:
                latest = await asyncio.to_thread(self._repo.last_sequences, rooms)
            except Exception:
                log.warning("latest-sequence check failed", exc_info=True)
                continue
            for room_id, sequence in previous.items():
                self._offer(room_id, LatestSequence(room_id, sequence))
            previous = latest

    async def _check_membership(self) -> None:
        """Each period, one query for the rooms of every listening user."""
        while True:
            await asyncio.sleep(self._membership_interval_s)
            listeners = list(self._listeners)
            if not listeners:
                continue
            read_at = time.monotonic()
            rooms: dict[str, list[str]] | None = None
            try:
                rooms = await asyncio.to_thread(
                    self._repo.room_ids_of_users, {each.user_id for each in listeners}
                )
            except Exception:
                log.warning("membership check failed", exc_info=True)
            for listener in listeners:
                room_ids = None if rooms is None else frozenset(rooms.get(listener.user_id, ()))
                listener.offer(Membership(room_ids, read_at))
