"""One Subscribe stream: replay from the store after each resume position, then
live, with no gap and no duplicate. The per-room position advances on every
sequence seen, addressed to this user or not, so filtered messages (another audience,
another channel) never look like losses. A message that arrives ahead of its turn (concurrent senders commit
and publish in parallel) is held until the missing ones arrive; only a newer
latest sequence from the hub's periodic check (by then, a real loss) is filled
from the store, or a hold that grows past `MAX_HELD`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.config import ChatConfig
from chat_svc.convert import message_to_proto, timestamp
from chat_svc.handlers import ChatHandlers
from chat_svc.hub import Hub, Item, LatestSequence, Listener, Membership, Presence
from chat_svc.model import Channel, Room, addressed_to
from chat_svc.presence import PresenceTracker
from mesh.auth import Principal
from mesh.errors import FieldViolation, NotFound, OutOfRange, PermissionDenied, ResourceExhausted

MAX_HELD = 200  # messages held ahead of a gap per room before it is filled from the store


class Subscription:
    """State of one stream: followed rooms and the last sequence seen in each."""

    def __init__(
        self,
        config: ChatConfig,
        handlers: ChatHandlers,
        hub: Hub,
        presence: PresenceTracker,
        caller: Principal,
        room_ids: list[str],
        positions: dict[str, int],
        channels: frozenset[Channel] = frozenset(),
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.hub = hub
        self.presence = presence
        self.caller = caller
        self.follow_all = not room_ids
        self.requested = room_ids
        self.positions = positions
        self.channels = channels  # empty: every channel
        self.last: dict[str, int] = {}
        self.held: dict[str, dict[int, pb.Message]] = {}  # room → early arrivals by sequence
        self.listener = Listener(caller.user_id, config.chat_subscriber_buffer)
        self.started_at = time.monotonic()
        self.sent_at = self.started_at  # the last response handed to gRPC (heartbeat pacing)

    async def run(self) -> AsyncIterator[pb.SubscribeResponse]:
        rooms = await self._initial_rooms()
        self.started_at = time.monotonic()  # membership read before this may predate `rooms`
        connection_id = await asyncio.to_thread(self.presence.connect, self.caller.user_id)
        self.hub.open(self.listener)
        try:
            for room_id in rooms:
                async for response in self._follow(room_id, self.positions.get(room_id)):
                    yield response
            async for response in self._live():
                yield response
                self.sent_at = time.monotonic()
        finally:
            self.hub.close(self.listener)
            for room_id in list(self.last):
                self.hub.remove(room_id, self.listener)
            self.held.clear()
            await asyncio.shield(asyncio.to_thread(self.presence.disconnect, connection_id))

    async def _initial_rooms(self) -> list[str]:
        """Every named room and position checked before anything streams: a room
        that is unknown or not the caller's, or a position past its room's end,
        fails the stream instead of being skipped (a skipped position loses the
        messages after it without a sign)."""
        named = [*self.requested, *(r for r in self.positions if r not in self.requested)]
        rooms = await asyncio.to_thread(self.handlers.repo.rooms_by_ids, named) if named else {}
        for i, room_id in enumerate(self.requested):
            self._check_member(rooms.get(room_id), room_id, f"room_ids[{i}]")
        for i, (room_id, after) in enumerate(self.positions.items()):
            room = self._check_member(rooms.get(room_id), room_id, f"positions[{i}].room_id")
            if after > room.last_sequence:
                raise OutOfRange(
                    [
                        FieldViolation(
                            f"positions[{i}].after_sequence",
                            f"room {room_id} ends at sequence {room.last_sequence}",
                        )
                    ],
                    f"position {after} is after the last message of room {room_id}",
                )
        if self.follow_all:
            return await asyncio.to_thread(self.handlers.repo.room_ids_of, self.caller.user_id)
        return list(self.requested)

    def _check_member(self, room: Room | None, room_id: str, path: str) -> Room:
        if room is None:
            raise NotFound(f"room {room_id} not found", violations=[FieldViolation(path, "no such room")])
        if not room.is_member(self.caller.user_id):
            raise PermissionDenied(
                f"{self.caller.user_id} is not a member of room {room_id}",
                violations=[FieldViolation(path, "the caller is not a member of this room")],
            )
        return room

    async def _follow(self, room_id: str, after: int | None) -> AsyncIterator[pb.SubscribeResponse]:
        """Listen first, then replay, so nothing published meanwhile is missed."""
        await self.hub.add(room_id, self.listener)
        room = await asyncio.to_thread(self.handlers.load_room, room_id)
        if after is None or after >= room.last_sequence:
            self.last[room_id] = room.last_sequence if after is None else after
        else:
            self.last[room_id] = after
            async for response in self._fill(room_id, room.last_sequence):
                yield response
        yield pb.SubscribeResponse(
            room_subscribed=pb.RoomSubscribed(room_id=room_id, last_sequence=self.last[room_id])
        )

    async def _fill(self, room_id: str, until: int) -> AsyncIterator[pb.SubscribeResponse]:
        """Read (last, until] from the store in batches and deliver in order."""
        while self.last.get(room_id, until) < until:
            batch = await asyncio.to_thread(
                self.handlers.repo.messages_after,
                room_id,
                self.last[room_id],
                until,
                self.config.chat_replay_batch,
            )
            if not batch:
                break  # not committed yet: the next check retries
            for message in batch:
                response = self._accept(message_to_proto(message))
                if response is not None:
                    yield response
        for response in self._release_held(room_id):
            yield response

    def _accept(self, message: pb.Message) -> pb.SubscribeResponse | None:
        """Advance the room's position; the message if it is new and addressed to us."""
        room_id = message.room_id
        if message.sequence != self.last.get(room_id, -1) + 1:
            return None
        self.last[room_id] = message.sequence
        if self.channels and message.channel not in self.channels:
            return None
        audience, user_id = message.audience, self.caller.user_id
        if not addressed_to(audience.kind, list(audience.recipient_ids), message.sender_id, user_id):
            return None
        return pb.SubscribeResponse(message=message)

    async def _live(self) -> AsyncIterator[pb.SubscribeResponse]:
        """Queued items in order. No timer per stream: the hub's periodic Membership
        item also paces the heartbeat of an idle stream."""
        queue = self.listener.queue
        while True:
            if self.listener.overflowed:
                raise ResourceExhausted(
                    "subscriber buffer full: the stream is too slow; resubscribe from your positions"
                )
            item = queue.get_nowait() if not queue.empty() else await queue.get()
            if isinstance(item, pb.Message) and item.sequence == self.last.get(item.room_id, -2) + 1:
                response = self._accept(item)  # the hot path: the next message of a followed room
                if response is not None:
                    yield response
                if self.held.get(item.room_id):
                    for response in self._release_held(item.room_id):
                        yield response
                continue
            if isinstance(item, Membership):
                async for response in self._refresh_membership(item):
                    yield response
                if time.monotonic() - self.sent_at >= self.config.chat_heartbeat_s:
                    yield pb.SubscribeResponse(heartbeat=pb.Heartbeat(server_time=_now()))
                continue
            async for response in self._handle(item):
                yield response

    async def _handle(self, item: Item) -> AsyncIterator[pb.SubscribeResponse]:
        if isinstance(item, Presence):
            if item.room_id in self.last:
                yield pb.SubscribeResponse(
                    presence=pb.PresenceEvent(
                        room_id=item.room_id,
                        user_id=item.user_id,
                        state=item.state,  # type: ignore[arg-type]
                        time=timestamp(item.time_s),
                    )
                )
            return
        if isinstance(item, LatestSequence):
            if item.room_id in self.last and item.sequence > self.last[item.room_id]:
                async for response in self._fill(item.room_id, item.sequence):
                    yield response
            return
        if not isinstance(item, pb.Message):
            return
        room_id = item.room_id
        if room_id not in self.last or item.sequence <= self.last[room_id]:
            return  # not followed, or a duplicate
        if item.sequence > self.last[room_id] + 1:  # ahead of its turn: hold it
            held = self.held.setdefault(room_id, {})
            held[item.sequence] = item
            if len(held) > MAX_HELD:  # not a reorder any more: fill the gap now
                async for response in self._fill(room_id, min(held) - 1):
                    yield response
            return
        response = self._accept(item)
        if response is not None:
            yield response
        for response in self._release_held(room_id):
            yield response

    def _release_held(self, room_id: str) -> list[pb.SubscribeResponse]:
        """Held messages that are next in turn now (stale ones are dropped)."""
        held = self.held.get(room_id)
        if not held:
            return []
        responses = []
        last = self.last.get(room_id, 0)
        for sequence in [s for s in held if s <= last]:
            del held[sequence]
        while (message := held.pop(self.last.get(room_id, 0) + 1, None)) is not None:
            response = self._accept(message)
            if response is not None:
                responses.append(response)
        return responses

    async def _refresh_membership(self, membership: Membership) -> AsyncIterator[pb.SubscribeResponse]:
        """Follow rooms joined since (follow-all streams) and drop rooms left; a
        snapshot whose read began before the stream read its rooms is too old to act on."""
        current = membership.room_ids
        if current is None or membership.read_at < self.started_at:
            return
        for room_id in [r for r in self.last if r not in current]:
            self.hub.remove(room_id, self.listener)
            del self.last[room_id]
            self.held.pop(room_id, None)
            yield pb.SubscribeResponse(room_unsubscribed=pb.RoomUnsubscribed(room_id=room_id))
        if self.follow_all:
            for room_id in sorted(current - set(self.last)):
                async for response in self._follow(room_id, None):
                    yield response


def _now() -> Timestamp:
    return timestamp(time.time())
