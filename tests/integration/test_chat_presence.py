"""chat_svc presence when a replica crashes: its users go offline for the others
once their connections' TTL lapses, announced once by a surviving replica, and
they do not come back online by themselves."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient, Follower
from mesh.processes import wait_until
from mesh.store import Store
from tests.integration.test_chat_streams import followers, start_chat
from tests.support.processes import ServiceProcess

__all__ = ["followers"]

FAST_PRESENCE = {
    "CHAT_PRESENCE_TTL_S": "3",
    "CHAT_PRESENCE_HEARTBEAT_S": "0.5",
    "CHAT_GAP_CHECK_S": "0.3",
    "CHAT_MEMBERSHIP_CHECK_S": "0.5",
}


class PresenceLog:
    """The presence events one follower saw, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def record(self, response: pb.SubscribeResponse) -> None:
        if response.WhichOneof("event") == "presence":
            with self._lock:
                self.events.append((response.presence.user_id, response.presence.state))

    def of(self, user_id: str) -> list[int]:
        with self._lock:
            return [state for user, state in self.events if user == user_id]


def watch(followers: list[Follower], target: str, token: str, room_id: str) -> tuple[Follower, PresenceLog]:
    log = PresenceLog()
    follower = Follower(targets=[target], token=token, room_ids=[room_id])
    follower.on_event = log.record
    followers.append(follower.start())
    assert follower.wait_subscribed(15)
    return follower, log


@pytest.fixture
def three(
    start_service: Callable[..., ServiceProcess],
) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    return (
        start_chat(start_service, **FAST_PRESENCE),
        start_chat(start_service, **FAST_PRESENCE),
        start_chat(start_service, **FAST_PRESENCE),
    )


def test_users_of_a_killed_replica_go_offline_once_for_the_others(
    three: tuple[ServiceProcess, ServiceProcess, ServiceProcess],
    token: Callable[..., str],
    followers: list[Follower],
    service_env: dict[str, str],
) -> None:
    doomed, two, three_ = three
    alice = ChatClient(two.target, token("alice", "customer"))
    room = alice.create_group("team", ["bob", "carol"])
    alice_follower, alice_saw = watch(followers, two.target, alice.token, room.id)
    carol, carol_saw = watch(followers, three_.target, token("carol", "customer"), room.id)
    bob = Follower(targets=[doomed.target], token=token("bob", "customer"), room_ids=[room.id])
    followers.append(bob.start())
    assert bob.wait_subscribed(15)
    online = pb.PRESENCE_STATE_ONLINE
    offline = pb.PRESENCE_STATE_OFFLINE
    assert wait_until(lambda: alice_saw.of("bob") == [online] and carol_saw.of("bob") == [online], 15)

    doomed.kill()  # with bob's stream open: no shutdown code announces anything
    bob.stop()
    assert wait_until(lambda: offline in alice_saw.of("bob") and offline in carol_saw.of("bob"), 30)

    # once the dead replica's connections are reaped, a message sent afterwards
    # arrives behind every presence event of that time: nothing more for bob
    store = Store(service_env["MONGO_URL"], service_env["MONGO_DB"])
    try:
        assert wait_until(lambda: store.db.connections.count_documents({"user_id": "bob"}) == 0, 30)
    finally:
        store.close()
    alice.send(room.id, "after the crash")
    assert wait_until(lambda: carol.bodies() == alice_follower.bodies() == ["after the crash"], 15)
    assert alice_saw.of("bob") == [online, offline]
    assert carol_saw.of("bob") == [online, offline]
    listed = alice.stub.ListPresence(pb.ListPresenceRequest(room_id=room.id), metadata=alice.metadata)
    assert list(listed.online_user_ids) == ["alice", "carol"]
