"""A session posts only to a room of its own two participants: StartSession checks a
given room with chat_svc as the caller, assigns a room when none is given, and
chat_svc creates that room with exactly the assigned id. Real processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from switchboard.chat.v1 import chat_service_pb2 as chat_pb
from switchboard.session.v1 import session_service_pb2 as pb

from chat_svc.client import ChatClient
from mesh.processes import free_port, wait_until
from tests.integration.sessions_mesh import (
    SessionUser,
    direct_room,
    field_violations,
    start_chat_for_sessions,
    start_sessions,
    system_messages,
)
from tests.support.processes import ServiceProcess


@pytest.fixture
def chat(start_service: Callable[..., ServiceProcess], isolation: dict[str, str]) -> ServiceProcess:
    return start_chat_for_sessions(start_service, isolation)


@pytest.fixture
def sessions(start_service: Callable[..., ServiceProcess], chat: ServiceProcess) -> ServiceProcess:
    return start_sessions(start_service, chat.target)


@pytest.fixture
def alice(sessions: ServiceProcess, token: Callable[..., str]) -> Iterator[SessionUser]:
    user = SessionUser(sessions.target, token("alice", "customer"))
    yield user
    user.close()


def _room(
    chat: ServiceProcess, token: Callable[..., str], owner: str, request: chat_pb.CreateRoomRequest
) -> str:
    client = ChatClient(chat.target, token(owner, "customer"))
    try:
        return str(client.stub.CreateRoom(request, metadata=client.metadata, timeout=10).room.id)
    finally:
        client.close()


def test_session_without_a_room_shows_the_room_chat_creates_with_that_id(
    alice: SessionUser, chat: ServiceProcess, token: Callable[..., str]
) -> None:
    session = alice.start()
    assert uuid.UUID(session.room_id)
    assert alice.get(session.id).room_id == session.room_id
    bob = token("bob", "advisor")
    assert wait_until(lambda: len(system_messages(chat, bob, session.room_id)) == 1, 15)
    client = ChatClient(chat.target, bob)
    try:
        room = client.stub.GetRoom(
            chat_pb.GetRoomRequest(room_id=session.room_id), metadata=client.metadata
        ).room
    finally:
        client.close()
    assert room.kind == chat_pb.ROOM_KIND_SESSION and room.session_id == session.id
    assert sorted(room.member_ids) == ["alice", "bob"]


def test_direct_room_of_exactly_both_participants_gets_the_session_messages(
    alice: SessionUser, chat: ServiceProcess, token: Callable[..., str]
) -> None:
    room = direct_room(chat, token, "alice", "bob")
    session = alice.start(room_id=room.id)
    assert session.room_id == room.id
    messages = lambda: system_messages(chat, token("alice", "customer"), room.id)  # noqa: E731
    assert wait_until(lambda: [m.system_event_type for m in messages()] == ["session.started.v1"], 15)


@pytest.mark.parametrize(
    ("owner", "kind", "members", "session_id"),
    [
        ("carol", chat_pb.ROOM_KIND_DIRECT, ["dave"], ""),  # someone else's conversation
        ("carol", chat_pb.ROOM_KIND_GROUP, ["alice", "bob"], ""),  # a third member
        ("alice", chat_pb.ROOM_KIND_GROUP, ["bob"], ""),  # the two of them, but a group
        ("alice", chat_pb.ROOM_KIND_DIRECT, ["carol"], ""),  # the customer's, with another user
        ("bob", chat_pb.ROOM_KIND_SESSION, ["alice"], "another-session"),  # bound to another session
    ],
    ids=["foreign-direct", "group-of-three", "group-of-two", "direct-with-another", "bound-session-room"],
)
def test_room_that_is_not_the_two_participants_own_is_refused(
    alice: SessionUser,
    chat: ServiceProcess,
    token: Callable[..., str],
    owner: str,
    kind: int,
    members: list[str],
    session_id: str,
) -> None:
    request = chat_pb.CreateRoomRequest(
        kind=kind,  # type: ignore[arg-type]
        display_name="room",
        member_ids=members,
        session_id=session_id,
        request_id=uuid.uuid4().hex,
    )
    room_id = _room(chat, token, owner, request)
    with pytest.raises(grpc.RpcError) as refused:
        alice.start(room_id=room_id)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert field_violations(refused.value) == {"room_id"}
    assert alice.list() == []  # nothing started, nothing will post there


@pytest.mark.parametrize("room_id", ["nope", "3f1c2b9e-0d4a-4e57-9a51-7c2f8e6b1d04"])
def test_made_up_room_id_is_not_found_and_squats_nothing(alice: SessionUser, room_id: str) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        alice.start(room_id=room_id)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert field_violations(refused.value) == {"room_id"}
    assert alice.list() == []


def test_room_of_an_open_session_is_refused_to_another_until_it_ends(
    alice: SessionUser, chat: ServiceProcess, token: Callable[..., str]
) -> None:
    room = direct_room(chat, token, "alice", "bob")
    first = alice.start(room_id=room.id, request_id="first")
    assert alice.start(room_id=room.id, request_id="first").id == first.id  # a retry, not another session
    with pytest.raises(grpc.RpcError) as refused:
        alice.start(room_id=room.id, request_id="second")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert field_violations(refused.value) == {"room_id"}
    alice.end(first.id)
    assert alice.start(room_id=room.id, request_id="third").room_id == room.id


def test_admin_starting_for_a_customer_is_held_to_the_same_rule(
    sessions: ServiceProcess, chat: ServiceProcess, token: Callable[..., str]
) -> None:
    admin = SessionUser(sessions.target, token("root", "admin"))

    def start_for_alice(room_id: str) -> pb.Session:
        request = pb.StartSessionRequest(
            customer_id="alice", advisor_id="bob", prepaid_seconds=600, room_id=room_id, request_id=room_id
        )
        return admin.stub.StartSession(request, metadata=admin.metadata, timeout=15).session

    try:
        with pytest.raises(grpc.RpcError) as refused:
            start_for_alice(
                direct_room(chat, token, "carol", "dave").id
            )  # an admin sees it, but it is not theirs
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        own = direct_room(chat, token, "alice", "bob")
        assert start_for_alice(own.id).room_id == own.id
    finally:
        admin.close()


def test_chat_down_refuses_a_given_room_as_unavailable_and_starts_without_one(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    nothing_listens = f"127.0.0.1:{free_port()}"
    sessions = start_sessions(start_service, nothing_listens, CHAT_DEADLINE_S="2")
    alice = SessionUser(sessions.target, token("alice", "customer"))
    try:
        with pytest.raises(grpc.RpcError) as refused:
            alice.start(room_id=str(uuid.uuid4()))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert alice.start().room_id  # degrades: its own room, created once chat is back
    finally:
        alice.close()
