"""chat_svc's domain events on the shared events exchange (through its outbox):
rooms created, members joining and leaving, messages posted, presence changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from pymongo import MongoClient
from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.events.v1 import chat_events_pb2 as ce

from chat_svc.client import ChatClient, Follower
from chat_svc.repository import CONNECTIONS
from mesh.bus import EventConsumer
from mesh.events import Event, unpack
from mesh.processes import wait_until
from mesh.store import Document
from tests.integration.test_chat_streams import start_chat
from tests.support.events import event_config
from tests.support.processes import EmbeddedMongo, ServiceProcess


class Tap:
    """Every chat.* event published on the test's events exchange, in arrival order."""

    def __init__(self, mongo: EmbeddedMongo, isolation: dict[str, str]) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        config = event_config(mongo.url, isolation)
        self.consumer = EventConsumer(config, "chat-tap", ["chat.#"], self._record)

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of_type(self, event_type: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.type == event_type]


@pytest.fixture
def tap(mongo: EmbeddedMongo, isolation: dict[str, str]) -> Iterator[Tap]:
    tap = Tap(mongo, isolation)
    tap.consumer.start_thread()
    assert tap.consumer.wait_ready(15)
    yield tap
    tap.consumer.stop_thread()


@pytest.fixture
def chat(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_chat(start_service)


def test_room_created_event_names_owner_and_members(
    chat: ServiceProcess, tap: Tap, token: Callable[..., str]
) -> None:
    room = ChatClient(chat.target, token("alice", "customer")).create_group("team", ["bob"])
    assert wait_until(lambda: len(tap.of_type("chat.room_created.v1")) == 1, 15)
    created = unpack(tap.of_type("chat.room_created.v1")[0], ce.ChatRoomCreated)
    assert (created.room_id, created.owner_id, list(created.member_ids)) == (
        room.id,
        "alice",
        ["alice", "bob"],
    )
    assert created.kind == ce.CHAT_ROOM_KIND_GROUP


def test_join_leave_add_and_remove_emit_member_events_with_the_actor(
    chat: ServiceProcess, tap: Tap, token: Callable[..., str]
) -> None:
    alice = ChatClient(chat.target, token("alice", "customer"))
    carol = ChatClient(chat.target, token("carol", "customer"))
    room = alice.create_group("team")
    carol.stub.JoinRoom(pb.JoinRoomRequest(room_id=room.id), metadata=carol.metadata, timeout=10)
    carol.stub.LeaveRoom(pb.LeaveRoomRequest(room_id=room.id), metadata=carol.metadata, timeout=10)
    alice.stub.AddMember(
        pb.AddMemberRequest(room_id=room.id, user_id="dave"), metadata=alice.metadata, timeout=10
    )
    alice.stub.RemoveMember(
        pb.RemoveMemberRequest(room_id=room.id, user_id="dave"), metadata=alice.metadata, timeout=10
    )
    alice.stub.RemoveMember(
        pb.RemoveMemberRequest(room_id=room.id, user_id="dave"), metadata=alice.metadata, timeout=10
    )  # no change
    # A later event from the same outbox arrives after any the no-change removal emitted.
    sentinel = alice.create_group("sentinel")
    assert wait_until(
        lambda: any(
            unpack(e, ce.ChatRoomCreated).room_id == sentinel.id for e in tap.of_type("chat.room_created.v1")
        ),
        15,
    )
    member_types = ("chat.member_joined.v1", "chat.member_left.v1")
    assert sum(len(tap.of_type(t)) for t in member_types) == 4
    joined = [unpack(e, ce.ChatMemberJoined) for e in tap.of_type("chat.member_joined.v1")]
    left = [unpack(e, ce.ChatMemberLeft) for e in tap.of_type("chat.member_left.v1")]
    assert sorted((j.user_id, j.added_by) for j in joined) == [("carol", ""), ("dave", "alice")]
    assert sorted((m.user_id, m.removed_by) for m in left) == [("carol", ""), ("dave", "alice")]
    assert {e.subject for e in tap.events if e.type in member_types} == {f"rooms/{room.id}"}


def test_message_posted_event_carries_the_stored_message(
    chat: ServiceProcess, tap: Tap, token: Callable[..., str]
) -> None:
    alice = ChatClient(chat.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    sent = alice.send(room.id, "hello", client_message_id="c-1")
    alice.send(room.id, "hello", client_message_id="c-1")  # an idempotent retry posts nothing new
    alice.send(room.id, "second")
    assert wait_until(lambda: len(tap.of_type("chat.message_posted.v1")) == 2, 15)
    posted = sorted(
        (unpack(e, ce.ChatMessagePosted) for e in tap.of_type("chat.message_posted.v1")),
        key=lambda p: p.sequence,
    )
    assert [(p.sequence, p.body) for p in posted] == [(1, "hello"), (2, "second")]
    assert posted[0].message_id == sent.message_id


def test_presence_changes_are_published_once_per_transition(
    chat: ServiceProcess, tap: Tap, token: Callable[..., str], mongo: EmbeddedMongo, isolation: dict[str, str]
) -> None:
    alice = ChatClient(chat.target, token("alice", "customer"))
    room = alice.create_group("team")
    client: MongoClient[Document] = MongoClient(mongo.url)
    connections = client[isolation["MONGO_DB"]][CONNECTIONS]
    presence = "chat.presence_changed.v1"

    def alices_connections() -> int:
        return connections.count_documents({"user_id": "alice"})

    phone = Follower(targets=[chat.target], token=alice.token, room_ids=[room.id]).start()
    laptop = Follower(targets=[chat.target], token=alice.token, room_ids=[room.id]).start()
    try:
        assert phone.wait_subscribed(15) and laptop.wait_subscribed(15)
        assert wait_until(lambda: len(tap.of_type(presence)) == 1, 15)  # online, once for both
        phone.stop()
        assert wait_until(lambda: alices_connections() == 1, 15)  # the phone's end was handled
        laptop.stop()
        assert wait_until(lambda: len(tap.of_type(presence)) >= 2, 15)
        again = Follower(targets=[chat.target], token=alice.token, room_ids=[room.id]).start()
        assert again.wait_subscribed(15)
        # online again: the third event, so anything the phone's end published came before it
        assert wait_until(lambda: len(tap.of_type(presence)) >= 3, 15)
        again.stop()
    finally:
        phone.stop()
        laptop.stop()
        client.close()
    changes = [unpack(e, ce.PresenceChanged) for e in tap.of_type(presence)[:3]]
    assert [(c.user_id, c.state) for c in changes] == [
        ("alice", ce.PRESENCE_STATE_ONLINE),
        ("alice", ce.PRESENCE_STATE_OFFLINE),
        ("alice", ce.PRESENCE_STATE_ONLINE),
    ]
    assert list(changes[0].room_ids) == [room.id]
