"""chat_svc rooms and messages through a real process: membership rules,
idempotent sends, history paging and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import ServiceProcess


@pytest.fixture
def chat(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_chat(start_service, CHAT_MAX_BODY_BYTES="64")


@pytest.fixture
def clients(chat: ServiceProcess, token: Callable[..., str]) -> Iterator[Callable[[str], ChatClient]]:
    made: list[ChatClient] = []

    def client(user: str) -> ChatClient:
        made.append(ChatClient(chat.target, token(user, "customer")))
        return made[-1]

    yield client
    for c in made:
        c.close()


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    return error.code()


def violated_fields(call: Callable[[], object]) -> set[str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    return {v.field for v in bad.field_violations}


def test_creator_owns_room_and_members_join_and_leave(clients: Callable[[str], ChatClient]) -> None:
    alice, bob = clients("alice"), clients("bob")
    room = alice.create_group("team")
    assert room.owner_id == "alice" and list(room.member_ids) == ["alice"]
    joined = bob.stub.JoinRoom(pb.JoinRoomRequest(room_id=room.id), metadata=bob.metadata).room
    assert set(joined.member_ids) == {"alice", "bob"}
    listed = bob.stub.ListRooms(pb.ListRoomsRequest(), metadata=bob.metadata).rooms
    assert [r.id for r in listed] == [room.id]
    bob.stub.LeaveRoom(pb.LeaveRoomRequest(room_id=room.id), metadata=bob.metadata)
    assert code_of(lambda: bob.send(room.id, "hi")) == grpc.StatusCode.PERMISSION_DENIED


def test_only_the_owner_adds_and_removes_members(clients: Callable[[str], ChatClient]) -> None:
    alice, bob = clients("alice"), clients("bob")
    room = alice.create_group("team", ["bob"])
    add = pb.AddMemberRequest(room_id=room.id, user_id="carol")
    assert (
        code_of(lambda: bob.stub.AddMember(add, metadata=bob.metadata)) == grpc.StatusCode.PERMISSION_DENIED
    )
    assert "carol" in alice.stub.AddMember(add, metadata=alice.metadata).room.member_ids
    remove = pb.RemoveMemberRequest(room_id=room.id, user_id="bob")
    assert "bob" not in alice.stub.RemoveMember(remove, metadata=alice.metadata).room.member_ids


def test_non_member_cannot_read_send_or_subscribe(clients: Callable[[str], ChatClient]) -> None:
    alice, mallory = clients("alice"), clients("mallory")
    room = alice.create_group("private")
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: mallory.send(room.id, "hi")) == denied
    assert code_of(lambda: mallory.history(room.id)) == denied
    stream = mallory.stub.Subscribe(pb.SubscribeRequest(room_ids=[room.id]), metadata=mallory.metadata)
    assert code_of(lambda: next(iter(stream))) == denied


def test_unknown_room_is_not_found(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    assert code_of(lambda: alice.send("no-such-room", "hi")) == grpc.StatusCode.NOT_FOUND


def test_invalid_send_names_every_bad_field(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    request = pb.SendMessageRequest(
        room_id=room.id,
        body="x" * 65,
        audience=pb.Audience(kind=pb.AUDIENCE_KIND_MEMBER),
    )
    fields = violated_fields(lambda: alice.stub.SendMessage(request, metadata=alice.metadata))
    assert fields == {"client_message_id", "body", "channel", "audience.recipient_ids"}


def test_send_is_idempotent_on_client_message_id(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    first = alice.send(room.id, "once", client_message_id="m-1")
    again = alice.send(room.id, "once", client_message_id="m-1")
    assert (again.message_id, again.sequence) == (first.message_id, 1)
    assert [m.body for m in alice.history(room.id)] == ["once"]


def test_history_pages_backwards_by_sequence(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    for i in range(5):
        alice.send(room.id, f"m{i}")
    first = alice.stub.ListMessages(
        pb.ListMessagesRequest(room_id=room.id, page_size=2), metadata=alice.metadata
    )
    assert [m.sequence for m in first.messages] == [5, 4]
    pages = [m.sequence for m in first.messages]
    token = first.next_page_token
    while token:
        page = alice.stub.ListMessages(
            pb.ListMessagesRequest(room_id=room.id, page_size=2, page_token=token), metadata=alice.metadata
        )
        pages += [m.sequence for m in page.messages]
        token = page.next_page_token
    assert pages == [5, 4, 3, 2, 1]


def test_forged_page_token_is_invalid_argument(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    request = pb.ListMessagesRequest(room_id=room.id, page_token="bm9wZQ")
    assert violated_fields(lambda: alice.stub.ListMessages(request, metadata=alice.metadata)) == {
        "page_token"
    }
