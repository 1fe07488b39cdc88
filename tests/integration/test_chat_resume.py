"""chat_svc resume: a client of a killed replica, an away client, a lost fan-out
publish and a slow reader all end up with every message once, in order."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest
from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.chat.v1 import chat_service_pb2_grpc

from chat_svc.client import ChatClient, Follower
from mesh.processes import wait_until
from mesh.store import Store
from tests.integration.test_chat_streams import Replicas, follow, followers, replicas, start_chat
from tests.support.processes import ServiceProcess

__all__ = ["followers", "replicas"]  # fixtures shared with test_chat_streams


def test_client_of_killed_replica_resumes_on_the_other_without_gap_or_duplicate(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(two.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    bob_sees = follow(followers, [one.target, two.target], token("bob", "customer"), [room.id])
    for i in range(5):
        alice.send(room.id, f"before-{i}")
    assert wait_until(lambda: len(bob_sees.messages) == 5, 10)
    one.kill()
    for i in range(5):
        alice.send(room.id, f"after-{i}")
    assert wait_until(lambda: len(bob_sees.messages) == 10, 15)
    assert bob_sees.reconnects >= 1
    assert [m.sequence for m in bob_sees.messages] == list(range(1, 11))


def test_client_away_for_a_while_gets_what_it_missed_on_reconnect(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower]
) -> None:
    one, two = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    bob_token = token("bob", "customer")
    first = follow(followers, [two.target], bob_token, [room.id])
    alice.send(room.id, "seen")
    assert wait_until(lambda: len(first.messages) == 1, 10)
    first.stop()
    for i in range(3):
        alice.send(room.id, f"missed-{i}")
    back = Follower(
        targets=[one.target], token=bob_token, room_ids=[room.id], positions=dict(first.positions)
    )
    followers.append(back.start())
    assert wait_until(lambda: len(back.messages) == 3, 10)
    alice.send(room.id, "live")
    assert wait_until(lambda: len(back.messages) == 4, 10)
    assert back.bodies() == ["missed-0", "missed-1", "missed-2", "live"]


def test_message_whose_fanout_was_lost_is_delivered_from_the_store(
    replicas: Replicas, token: Callable[..., str], followers: list[Follower], service_env: dict[str, str]
) -> None:
    one, _ = replicas
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    bob = follow(followers, [one.target], token("bob", "customer"), [room.id])
    # What a replica killed between commit and publish leaves behind: stored, never fanned out.
    store = Store(service_env["MONGO_URL"], service_env["MONGO_DB"])
    store.db.rooms.update_one({"_id": room.id}, {"$inc": {"last_sequence": 1}})
    store.db.messages.insert_one(
        {
            "_id": "lost-1",
            "room_id": room.id,
            "sequence": 1,
            "idem": "user/alice/lost",
            "sender_id": "alice",
            "body": "never published",
            "channel": 1,
            "audience": 1,
            "recipient_ids": [],
            "kind": 1,
        }
    )
    store.close()
    assert wait_until(lambda: bob.bodies() == ["never published"], 10)


def test_slow_reader_stream_ends_with_resource_exhausted(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    chat = start_chat(start_service, CHAT_SUBSCRIBER_BUFFER="4", CHAT_MAX_BODY_BYTES="200000")
    alice = ChatClient(chat.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob"])
    channel = grpc.insecure_channel(chat.target)
    stub = chat_service_pb2_grpc.ChatServiceStub(channel)
    stream = stub.Subscribe(
        pb.SubscribeRequest(room_ids=[room.id]),
        metadata=ChatClient(chat.target, token("bob", "customer")).metadata,
    )
    assert next(stream).WhichOneof("event") == "room_subscribed"
    body = "x" * 190_000
    for i in range(60):  # enough to fill the transport windows, then the buffer of 4
        alice.send(room.id, body, client_message_id=f"m{i}")
    with pytest.raises(grpc.RpcError) as ended:
        for _ in stream:
            time.sleep(0.01)
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    channel.close()
