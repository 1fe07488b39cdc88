"""chat_svc live streams across two real replicas on the shared RabbitMQ:
ordering, resume after kill -9, delivery modes, slow readers, presence and the
per-room queue bindings."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient, Follower
from mesh.processes import wait_until
from tests.support.processes import ServiceProcess

Replicas = tuple[ServiceProcess, ServiceProcess]


def start_chat(start_service: Callable[..., ServiceProcess], **env: str) -> ServiceProcess:
    """Start chat_svc; retry on another port when the free port was taken meanwhile
    (an ephemeral port can be grabbed by any outgoing connection before we bind it)."""
    for attempt in range(3):
        try:
            return start_service("chat_svc", **env)
        except RuntimeError as exc:
            if "Failed to bind" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def replicas(start_service: Callable[..., ServiceProcess]) -> Replicas:
    fast = {"CHAT_GAP_CHECK_S": "0.3", "CHAT_MEMBERSHIP_CHECK_S": "0.5", "CHAT_PRESENCE_HEARTBEAT_S": "1"}
    return start_chat(start_service, **fast), start_chat(start_service, **fast)


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.stop()


def follow(followers: list[Follower], targets: list[str], token: str, rooms: list[str]) -> Follower:
    follower = Follower(targets=targets, token=token, room_ids=rooms).start()
    followers.append(follower)
    assert follower.wait_subscribed(10)
    return follower


def test_clients_on_different_replicas_see_each_others_messages_in_order(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    bob = ChatClient(two.target, token("bob", "customer"))
    room = alice.create_group("team", ["bob"])
    alice_sees = follow(followers, [one.target], alice.token, [room.id])
    bob_sees = follow(followers, [two.target], bob.token, [room.id])
    expected = []
    for i in range(10):
        sender = alice if i % 2 == 0 else bob
        expected.append(f"{sender.target}:{i}")
        sender.send(room.id, expected[-1])
    assert wait_until(lambda: len(alice_sees.messages) == 10 and len(bob_sees.messages) == 10, 10)
    assert alice_sees.bodies() == bob_sees.bodies() == expected
    assert [m.sequence for m in bob_sees.messages] == list(range(1, 11))


def test_multicast_and_direct_messages_reach_only_addressed_members(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob", "carol"])
    bob = follow(followers, [two.target], token("bob", "customer"), [room.id])
    carol = follow(followers, [one.target], token("carol", "customer"), [room.id])
    alice.send(
        room.id,
        "to bob and carol",
        audience=pb.Audience(kind=pb.AUDIENCE_KIND_MEMBERS, recipient_ids=["bob", "carol"]),
    )
    alice.send(
        room.id, "to bob only", audience=pb.Audience(kind=pb.AUDIENCE_KIND_MEMBER, recipient_ids=["bob"])
    )
    alice.send(
        room.id, "to carol only", audience=pb.Audience(kind=pb.AUDIENCE_KIND_MEMBER, recipient_ids=["carol"])
    )
    alice.send(room.id, "to everyone")
    assert wait_until(lambda: len(bob.messages) == 3 and len(carol.messages) == 3, 10)
    assert bob.bodies() == ["to bob and carol", "to bob only", "to everyone"]
    assert carol.bodies() == ["to bob and carol", "to carol only", "to everyone"]
    bob_history = ChatClient(one.target, token("bob", "customer")).history(room.id)
    assert [m.body for m in bob_history] == bob.bodies()


def test_same_user_on_two_replicas_receives_on_both(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    bob_token = token("bob", "customer")
    phone = follow(followers, [one.target], bob_token, [room.id])
    laptop = follow(followers, [two.target], bob_token, [room.id])
    alice.send(room.id, "hello")
    assert wait_until(lambda: phone.bodies() == ["hello"] and laptop.bodies() == ["hello"], 10)


def test_presence_is_shared_across_replicas_and_streamed(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    events: list[pb.PresenceEvent] = []
    alice_follower = Follower(targets=[one.target], token=alice.token, room_ids=[room.id])
    alice_follower.on_event = lambda r: (
        events.append(r.presence) if r.WhichOneof("event") == "presence" else None
    )
    followers.append(alice_follower.start())
    assert alice_follower.wait_subscribed(10)
    bob = follow(followers, [two.target], token("bob", "customer"), [room.id])
    presence = pb.ListPresenceRequest(room_id=room.id)
    online = lambda: list(alice.stub.ListPresence(presence, metadata=alice.metadata).online_user_ids)  # noqa: E731
    assert wait_until(lambda: online() == ["alice", "bob"], 10)
    assert wait_until(
        lambda: any(e.user_id == "bob" and e.state == pb.PRESENCE_STATE_ONLINE for e in events), 10
    )
    bob.stop()
    assert wait_until(lambda: online() == ["alice"], 10)
    assert wait_until(
        lambda: any(e.user_id == "bob" and e.state == pb.PRESENCE_STATE_OFFLINE for e in events), 10
    )


def bindings(exchange: str) -> set[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "source_name", "routing_key"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return {line.split("\t")[1] for line in out.splitlines() if line.startswith(exchange + "\t")}


def test_replica_binds_a_room_only_while_it_has_local_listeners(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower], isolation: dict[str, str]
) -> None:
    one, _ = replicas
    exchange = f"{isolation['EVENTS_EXCHANGE']}.chat"
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team")
    assert f"room.{room.id}" not in bindings(exchange)
    listener = follow(followers, [one.target], alice.token, [room.id])
    assert f"room.{room.id}" in bindings(exchange)
    listener.stop()
    assert wait_until(lambda: f"room.{room.id}" not in bindings(exchange), 15, 0.5)


def test_follow_all_stream_picks_up_rooms_joined_later_and_drops_rooms_left(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, _ = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    bob = ChatClient(one.target, token("bob", "customer"))
    first = alice.create_group("first", ["bob"])
    unsubscribed: list[str] = []
    everything = Follower(targets=[one.target], token=bob.token, room_ids=[])
    everything.on_event = lambda r: (
        unsubscribed.append(r.room_unsubscribed.room_id)
        if r.WhichOneof("event") == "room_unsubscribed"
        else None
    )
    followers.append(everything.start())
    assert everything.wait_subscribed(10)
    later = alice.create_group("later", ["bob"])
    assert wait_until(lambda: later.id in everything.positions, 10)
    alice.send(later.id, "in the later room")
    assert wait_until(lambda: everything.bodies() == ["in the later room"], 10)
    bob.stub.LeaveRoom(pb.LeaveRoomRequest(room_id=first.id), metadata=bob.metadata, timeout=10)
    assert wait_until(lambda: unsubscribed == [first.id], 10)
