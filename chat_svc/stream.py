"""One Subscribe stream: replay from the store after each resume position, then
live, with no gap and no duplicate. The per-room position advances on every
sequence seen, addressed to this user or not, so filtered messages never look
like losses; a jump in sequence (or a newer latest sequence from the periodic
check) is filled from the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.config import ChatConfig
from chat_svc.convert import message_to_proto, timestamp
from chat_svc.handlers import ChatHandlers
from chat_svc.hub import Hub, LatestSequence, Listener, Presence
from chat_svc.model import AudienceKind, addressed_to
from chat_svc.presence import PresenceTracker
from mesh.auth import Principal
from mesh.errors import ResourceExhausted


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
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.hub = hub
        self.presence = presence
        self.caller = caller
        self.follow_all = not room_ids
        self.requested = room_ids
        self.positions = positions
        self.last: dict[str, int] = {}
        self.listener = Listener(caller.user_id, config.chat_subscriber_buffer)

    async def run(self) -> AsyncIterator[pb.SubscribeResponse]:
        rooms = await self._initial_rooms()
        connection_id = await asyncio.to_thread(self.presence.connect, self.caller.user_id, rooms)
        try:
            for room_id in rooms:
                async for response in self._follow(room_id, self.positions.get(room_id)):
                    yield response
            async for response in self._live():
                yield response
        finally:
            for room_id in list(self.last):
                self.hub.remove(room_id, self.listener)
            await asyncio.shield(
                asyncio.to_thread(
                    self.presence.disconnect, connection_id, self.caller.user_id, list(self.last)
                )
            )

    async def _initial_rooms(self) -> list[str]:
        if self.follow_all:
            return await asyncio.to_thread(self.handlers.repo.room_ids_of, self.caller.user_id)
        for room_id in self.requested:  # NOT_FOUND / PERMISSION_DENIED before anything streams
            room = await asyncio.to_thread(self.handlers.load_room, room_id)
            room.require_member(self.caller.user_id)
        return list(self.requested)

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
                return  # not committed yet: the next check retries
            for message in batch:
                response = self._accept(message_to_proto(message))
                if response is not None:
                    yield response

    def _accept(self, message: pb.Message) -> pb.SubscribeResponse | None:
        """Advance the room's position; the message if it is new and addressed to us."""
        room_id = message.room_id
        if message.sequence != self.last.get(room_id, -1) + 1:
            return None
        self.last[room_id] = message.sequence
        audience = AudienceKind(message.audience.kind or AudienceKind.ROOM)
        if not addressed_to(
            audience, list(message.audience.recipient_ids), message.sender_id, self.caller.user_id
        ):
            return None
        return pb.SubscribeResponse(message=message)

    async def _live(self) -> AsyncIterator[pb.SubscribeResponse]:
        next_membership_check = time.monotonic() + self.config.chat_membership_check_s
        while True:
            if self.listener.overflowed:
                raise ResourceExhausted(
                    "subscriber buffer full: the stream is too slow; resubscribe from your positions"
                )
            item = await self._next_item(next_membership_check)
            if time.monotonic() >= next_membership_check:
                next_membership_check = time.monotonic() + self.config.chat_membership_check_s
                async for response in self._refresh_membership():
                    yield response
                if item is None:
                    continue
            if item is None:
                yield pb.SubscribeResponse(heartbeat=pb.Heartbeat(server_time=_now()))
                continue
            if isinstance(item, pb.Message) and item.sequence == self.last.get(item.room_id, -2) + 1:
                response = self._accept(item)  # the hot path: the next message of a followed room
                if response is not None:
                    yield response
                continue
            async for response in self._handle(item):
                yield response

    async def _next_item(self, next_membership_check: float) -> pb.Message | LatestSequence | Presence | None:
        """The next queued item; None after the heartbeat or membership interval."""
        queue = self.listener.queue
        if not queue.empty():  # no timer task per item while busy
            return queue.get_nowait()
        timeout = min(self.config.chat_heartbeat_s, max(0.0, next_membership_check - time.monotonic()))
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None

    async def _handle(
        self, item: pb.Message | LatestSequence | Presence
    ) -> AsyncIterator[pb.SubscribeResponse]:
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
        room_id = item.room_id
        if room_id not in self.last or item.sequence <= self.last[room_id]:
            return  # not followed, or a duplicate
        if item.sequence > self.last[room_id] + 1:  # a lost or reordered fan-out: fill the gap
            async for response in self._fill(room_id, item.sequence - 1):
                yield response
        response = self._accept(item)
        if response is not None:
            yield response

    async def _refresh_membership(self) -> AsyncIterator[pb.SubscribeResponse]:
        """Follow rooms joined since (follow-all streams) and drop rooms left."""
        current = set(await asyncio.to_thread(self.handlers.repo.room_ids_of, self.caller.user_id))
        for room_id in [r for r in self.last if r not in current]:
            self.hub.remove(room_id, self.listener)
            del self.last[room_id]
            yield pb.SubscribeResponse(room_unsubscribed=pb.RoomUnsubscribed(room_id=room_id))
        if self.follow_all:
            for room_id in sorted(current - set(self.last)):
                async for response in self._follow(room_id, None):
                    yield response


def _now() -> Timestamp:
    return timestamp(time.time())
