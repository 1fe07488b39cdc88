"""The Subscribe stream's ordering rules with in-memory fakes: replay then live,
duplicates dropped, early arrivals held for their turn, gaps filled from the
store, filtered messages (audience, channel) never taken for losses, overflow
ends the stream, and positions that would lose messages silently refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.config import ChatConfig
from chat_svc.convert import message_to_proto
from chat_svc.hub import LatestSequence, Listener, Membership, SeenSequences
from chat_svc.model import AudienceKind, Channel, Message, Room, RoomKind, addressed_to
from chat_svc.stream import Subscription
from mesh.auth import Principal
from mesh.errors import MeshError, NotFound, OutOfRange, PermissionDenied, ResourceExhausted

ROOM = "r1"


class FakeRepo:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.reads = 0

    def add(
        self,
        body: str,
        audience: AudienceKind = AudienceKind.ROOM,
        to: list[str] | None = None,
        channel: Channel = Channel.CHAT,
    ) -> pb.Message:
        message = Message(
            id=f"m{len(self.messages) + 1}",
            room_id=ROOM,
            sequence=len(self.messages) + 1,
            sender_id="alice",
            body=body,
            channel=channel,
            audience=audience,
            recipient_ids=to or [],
        )
        self.messages.append(message)
        return message_to_proto(message)

    def messages_after(self, room_id: str, after: int, until: int | None, limit: int) -> list[Message]:
        self.reads += 1
        found = [m for m in self.messages if m.sequence > after and (until is None or m.sequence <= until)]
        return found[:limit]

    def room_ids_of(self, user_id: str) -> list[str]:
        return [ROOM]

    def room(self) -> Room:
        return Room(ROOM, RoomKind.GROUP, "team", "alice", ["alice", "bob"], last_sequence=len(self.messages))

    def rooms_by_ids(self, room_ids: list[str]) -> dict[str, Room]:
        return {ROOM: self.room()} if ROOM in room_ids else {}


class FakeHandlers:
    def __init__(self, repo: FakeRepo) -> None:
        self.repo = repo

    def load_room(self, room_id: str) -> Room:
        return self.repo.room()


class FakeHub:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    async def add(self, room_id: str, listener: Listener) -> None:
        self.listeners.append(listener)

    def remove(self, room_id: str, listener: Listener) -> None:
        pass

    def open(self, listener: Listener) -> None:
        pass

    def close(self, listener: Listener) -> None:
        pass


class FakePresence:
    def connect(self, user_id: str) -> str:
        return "c1"

    def disconnect(self, connection_id: str) -> None:
        pass


def subscription(
    repo: FakeRepo,
    hub: FakeHub,
    after: int | None,
    buffer: int = 100,
    heartbeat_s: float = 30,
    *,
    user: str = "bob",
    rooms: list[str] | None = None,
    positions: dict[str, int] | None = None,
    channels: frozenset[Channel] = frozenset(),
) -> Subscription:
    config = ChatConfig(
        chat_subscriber_buffer=buffer, chat_heartbeat_s=heartbeat_s, chat_membership_check_s=30
    )
    if positions is None:
        positions = {} if after is None else {ROOM: after}
    handlers: Any = FakeHandlers(repo)
    return Subscription(
        config,
        handlers,
        hub,  # type: ignore[arg-type]
        FakePresence(),  # type: ignore[arg-type]
        Principal(user),
        [ROOM] if rooms is None else rooms,
        positions,
        channels,
    )


async def take(stream: AsyncIterator[pb.SubscribeResponse], count: int) -> list[pb.SubscribeResponse]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(count)]


def bodies(responses: list[pb.SubscribeResponse]) -> list[str]:
    return [r.message.body for r in responses if r.WhichOneof("event") == "message"]


async def test_replays_after_position_then_switches_to_live() -> None:
    repo, hub = FakeRepo(), FakeHub()
    for body in ("a", "b", "c"):
        repo.add(body)
    stream = subscription(repo, hub, after=1).run()
    replayed = await take(stream, 3)
    assert bodies(replayed) == ["b", "c"]
    assert replayed[2].room_subscribed.last_sequence == 3
    hub.listeners[0].offer(repo.add("d"))
    assert bodies(await take(stream, 1)) == ["d"]


async def test_live_duplicate_of_a_replayed_message_is_dropped() -> None:
    repo, hub = FakeRepo(), FakeHub()
    first = repo.add("a")
    stream = subscription(repo, hub, after=0).run()
    await take(stream, 2)
    hub.listeners[0].offer(first)  # the fan-out copy arrives after the replay
    hub.listeners[0].offer(repo.add("b"))
    assert bodies(await take(stream, 1)) == ["b"]


async def test_message_ahead_of_its_turn_waits_for_the_missing_one_without_a_store_read() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    reads = repo.reads
    first = repo.add("committed first")
    hub.listeners[0].offer(repo.add("published first"))
    hub.listeners[0].offer(first)
    assert bodies(await take(stream, 2)) == ["committed first", "published first"]
    assert repo.reads == reads


async def test_gap_still_open_at_the_latest_sequence_check_is_filled_from_the_store() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    repo.add("lost in fan-out")
    hub.listeners[0].offer(repo.add("arrived"))
    hub.listeners[0].offer(LatestSequence(ROOM, 1))
    assert bodies(await take(stream, 2)) == ["lost in fan-out", "arrived"]


async def test_latest_sequence_check_delivers_a_message_whose_fanout_was_lost() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    repo.add("never fanned out")
    hub.listeners[0].offer(LatestSequence(ROOM, 1))
    assert bodies(await take(stream, 1)) == ["never fanned out"]


async def test_message_for_others_advances_position_without_a_refill() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    reads = repo.reads
    hub.listeners[0].offer(repo.add("for carol", AudienceKind.MEMBER, ["carol"]))
    hub.listeners[0].offer(repo.add("for all"))
    assert bodies(await take(stream, 1)) == ["for all"]
    assert repo.reads == reads


async def test_overflowing_listener_ends_the_stream_with_resource_exhausted() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None, buffer=2).run()
    await take(stream, 1)
    for body in ("a", "b", "c"):
        hub.listeners[0].offer(repo.add(body))
    with pytest.raises(ResourceExhausted):
        await take(stream, 3)


async def test_membership_tick_after_the_idle_time_sends_a_heartbeat() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None, heartbeat_s=0.01).run()
    await take(stream, 1)
    await asyncio.sleep(0.02)
    hub.listeners[0].offer(Membership(frozenset({ROOM}), time.monotonic()))
    assert (await take(stream, 1))[0].WhichOneof("event") == "heartbeat"


async def test_membership_without_the_room_unsubscribes_it() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    hub.listeners[0].offer(Membership(frozenset(), time.monotonic()))
    assert (await take(stream, 1))[0].room_unsubscribed.room_id == ROOM


async def test_membership_read_before_the_stream_started_is_ignored() -> None:
    repo, hub = FakeRepo(), FakeHub()
    read_before = time.monotonic()
    stream = subscription(repo, hub, after=None).run()
    await take(stream, 1)
    hub.listeners[0].offer(Membership(frozenset(), read_before))
    hub.listeners[0].offer(repo.add("still followed"))
    assert bodies(await take(stream, 1)) == ["still followed"]


async def test_channel_filter_applies_to_replay_and_live_and_still_advances_the_position() -> None:
    repo, hub = FakeRepo(), FakeHub()
    repo.add("chat before", channel=Channel.CHAT)
    repo.add("voice before", channel=Channel.VOICE)
    repo.add("ticket before", channel=Channel.TICKETS)
    stream = subscription(repo, hub, after=0, channels=frozenset({Channel.VOICE})).run()
    replayed = await take(stream, 2)
    assert bodies(replayed) == ["voice before"]
    assert replayed[1].room_subscribed.last_sequence == 3  # past the filtered ones: no refill later
    reads = repo.reads
    hub.listeners[0].offer(repo.add("chat live", channel=Channel.CHAT))
    hub.listeners[0].offer(repo.add("voice live", channel=Channel.VOICE))
    assert bodies(await take(stream, 1)) == ["voice live"]
    assert repo.reads == reads


@pytest.mark.parametrize(
    ("audience", "recipients", "user", "expected"),
    [
        (AudienceKind.ROOM, [], "anyone", True),
        (AudienceKind.MEMBERS, ["bob", "carol"], "carol", True),
        (AudienceKind.MEMBER, ["bob"], "carol", False),
        (AudienceKind.MEMBER, ["bob"], "alice", True),  # the sender
        (0, [], "anyone", False),  # an unset kind is no broadcast
        (0, [], "alice", True),
        (7, ["bob"], "carol", False),
    ],
)
def test_message_is_addressed_to_recipients_and_sender(
    audience: int, recipients: list[str], user: str, expected: bool
) -> None:
    assert addressed_to(audience, recipients, "alice", user) is expected


def test_system_message_with_unset_audience_reaches_no_one() -> None:
    assert addressed_to(0, [], "", "") is False


async def refusal(stream: AsyncIterator[pb.SubscribeResponse]) -> MeshError:
    with pytest.raises(MeshError) as caught:
        await anext(stream)
    return caught.value


@pytest.mark.parametrize("follow_all", [False, True])
async def test_position_after_the_rooms_last_message_is_out_of_range(follow_all: bool) -> None:
    repo, hub = FakeRepo(), FakeHub()
    repo.add("a")
    stream = subscription(repo, hub, after=None, rooms=[] if follow_all else None, positions={ROOM: 2}).run()
    error = await refusal(stream)
    assert isinstance(error, OutOfRange)
    assert [v.field for v in error.violations] == ["positions[0].after_sequence"]
    assert hub.listeners == []  # refused before anything was followed


async def test_position_at_the_rooms_last_message_starts_live() -> None:
    repo, hub = FakeRepo(), FakeHub()
    repo.add("a")
    stream = subscription(repo, hub, after=1).run()
    assert (await take(stream, 1))[0].room_subscribed.last_sequence == 1


async def test_position_for_a_room_of_others_is_permission_denied_on_a_follow_all_stream() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None, user="mallory", rooms=[], positions={ROOM: 0}).run()
    error = await refusal(stream)
    assert isinstance(error, PermissionDenied)
    assert [v.field for v in error.violations] == ["positions[0].room_id"]


async def test_position_for_an_unknown_room_is_not_found() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None, rooms=[], positions={"nope": 0}).run()
    error = await refusal(stream)
    assert isinstance(error, NotFound)
    assert [v.field for v in error.violations] == ["positions[0].room_id"]


async def test_named_room_of_others_is_permission_denied_naming_the_field() -> None:
    repo, hub = FakeRepo(), FakeHub()
    stream = subscription(repo, hub, after=None, user="mallory").run()
    error = await refusal(stream)
    assert isinstance(error, PermissionDenied)
    assert [v.field for v in error.violations] == ["room_ids[0]"]


def test_hub_offers_each_sequence_of_a_room_once_even_out_of_order() -> None:
    seen = SeenSequences()
    arrivals = [5, 4, 5, 6, 4, 7, 6]
    assert [s for s in arrivals if seen.first_time(s)] == [5, 4, 6, 7]
