"""Session rooms: session_svc's events, published on the test's own exchange,
become SYSTEM messages in the session's room, once per event."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest
from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.events.v1 import session_events_pb2 as se

from chat_svc.client import ChatClient, Follower
from mesh.bus import Publisher
from mesh.config import MeshConfig
from mesh.events import new_event
from mesh.processes import wait_until
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import RABBITMQ_URL, ServiceProcess


@pytest.fixture
def publisher(isolation: dict[str, str]) -> Iterator[Publisher]:
    config = MeshConfig(rabbitmq_url=RABBITMQ_URL, events_exchange=isolation["EVENTS_EXCHANGE"])
    publisher = Publisher(config, "test-session-events").start()
    assert publisher.wait_ready(10)
    yield publisher
    publisher.close()


@pytest.fixture
def chat(start_service: Callable[..., ServiceProcess], isolation: dict[str, str]) -> ServiceProcess:
    process = start_chat(start_service, CHAT_MEMBERSHIP_CHECK_S="0.5")
    queue = f"{isolation['QUEUE_PREFIX']}chat.session-events"
    assert wait_until(lambda: queue_exists(queue), 15, 0.2), "chat never bound its session-events queue"
    return process


def queue_exists(queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_session_paused_shows_up_in_the_session_room_for_both_participants(
    chat: ServiceProcess, token: Callable[..., str], publisher: Publisher
) -> None:
    advisor = ChatClient(chat.target, token("adam", "advisor"))
    request = pb.CreateRoomRequest(
        kind=pb.ROOM_KIND_SESSION, member_ids=["cleo"], request_id="r1", session_id="s-1"
    )
    room = advisor.stub.CreateRoom(request, metadata=advisor.metadata).room
    seen = {}
    for user, role in (("adam", "advisor"), ("cleo", "customer")):
        seen[user] = Follower(targets=[chat.target], token=token(user, role), room_ids=[room.id]).start()
        assert seen[user].wait_subscribed(10)
    paused = se.SessionPaused(
        session_id="s-1", customer_id="cleo", advisor_id="adam", room_id=room.id, version=3
    )
    publisher.publish(new_event("session.paused.v1", "session", "sessions/s-1", paused)).result(10)
    try:
        for follower in seen.values():
            assert wait_until(lambda f=follower: len(f.messages) == 1, 10)  # type: ignore[misc]
            message = follower.messages[0]
            assert message.kind == pb.MESSAGE_KIND_SYSTEM
            assert message.system_event_type == "session.paused.v1"
            assert "paused" in message.body
    finally:
        for follower in seen.values():
            follower.stop()


def test_session_event_creates_the_room_and_a_redelivery_posts_nothing_twice(
    chat: ServiceProcess, token: Callable[..., str], publisher: Publisher
) -> None:
    warning = se.SessionPauseWarning(
        session_id="s-2", customer_id="cleo", advisor_id="adam", remaining_seconds=30
    )
    event = new_event("session.pause_warning.v1", "session", "sessions/s-2", warning)
    publisher.publish(event).result(10)
    publisher.publish(event).result(10)  # at-least-once: the same event again
    cleo = ChatClient(chat.target, token("cleo", "customer"))
    listed = lambda: list(cleo.stub.ListRooms(pb.ListRoomsRequest(), metadata=cleo.metadata).rooms)  # noqa: E731
    assert wait_until(lambda: len(listed()) == 1, 10)
    room = listed()[0]
    assert room.kind == pb.ROOM_KIND_SESSION and set(room.member_ids) == {"cleo", "adam"}
    resumed = se.SessionResumed(session_id="s-2", customer_id="cleo", advisor_id="adam", added_seconds=60)
    publisher.publish(new_event("session.resumed.v1", "session", "sessions/s-2", resumed)).result(10)
    assert wait_until(lambda: len(cleo.history(room.id)) == 2, 10)
    assert [m.system_event_type for m in cleo.history(room.id)] == [
        "session.pause_warning.v1",
        "session.resumed.v1",
    ]


def test_session_event_naming_a_room_of_other_users_posts_nothing_there(
    chat: ServiceProcess, token: Callable[..., str], publisher: Publisher
) -> None:
    eve = ChatClient(chat.target, token("eve", "customer"))
    request = pb.CreateRoomRequest(kind=pb.ROOM_KIND_DIRECT, member_ids=["frank"], request_id="r1")
    foreign = eve.stub.CreateRoom(request, metadata=eve.metadata).room
    group = eve.stub.CreateRoom(
        pb.CreateRoomRequest(
            kind=pb.ROOM_KIND_GROUP, display_name="g", member_ids=["cleo", "adam"], request_id="r2"
        ),
        metadata=eve.metadata,
    ).room
    for n, room_id in enumerate((foreign.id, group.id)):
        hijack = se.SessionPaused(
            session_id=f"s-x{n}", customer_id="cleo", advisor_id="adam", room_id=room_id, version=3
        )
        publisher.publish(new_event("session.paused.v1", "session", f"sessions/s-x{n}", hijack)).result(10)
    # A proper event after them, on the same queue: once it is posted, they were handled.
    own = se.SessionStarted(
        session_id="s-own", customer_id="cleo", advisor_id="adam", room_id="r-own", version=1
    )
    publisher.publish(new_event("session.started.v1", "session", "sessions/s-own", own)).result(10)
    cleo = ChatClient(chat.target, token("cleo", "customer"))
    assert wait_until(lambda: _has_room(cleo, "r-own") and len(cleo.history("r-own")) == 1, 15)
    assert eve.history(foreign.id) == [] and eve.history(group.id) == []


def _has_room(client: ChatClient, room_id: str) -> bool:
    rooms = client.stub.ListRooms(pb.ListRoomsRequest(), metadata=client.metadata).rooms
    return any(room.id == room_id for room in rooms)
