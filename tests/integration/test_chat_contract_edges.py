"""chat_svc at the edges of its contract, through a real process: no enum default
decides who sees a message or where it goes, and no position, cursor or id is
ever skipped silently (issue #16, items 2 and 6). Each refusal names the field."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient
from tests.integration import test_chat_rooms
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import ServiceProcess

ROOM_WIDE = pb.Audience(kind=pb.AUDIENCE_KIND_ROOM)


# the same client factory as test_chat_rooms, bound to this module's `chat`
clients = test_chat_rooms.clients


@pytest.fixture
def chat(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_chat(start_service)


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, set[str]]:
    """The status code of a refused call and the fields its BadRequest names."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: set[str] = set()
    if status is not None and status.details:
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        fields = {v.field for v in bad.field_violations}
    return error.code(), fields


def subscribe_refusal(client: ChatClient, request: pb.SubscribeRequest) -> tuple[grpc.StatusCode, set[str]]:
    stream = client.stub.Subscribe(request, metadata=client.metadata, timeout=10)
    return refusal(lambda: next(iter(stream)))


# -- SendMessage: no default widens the audience or picks the channel --------------


@pytest.mark.parametrize(
    ("audience", "channel", "field"),
    [
        (None, pb.CHANNEL_CHAT, "audience.kind"),  # the case: a typo'd or missing audience
        (pb.Audience(kind=pb.AUDIENCE_KIND_UNSPECIFIED), pb.CHANNEL_CHAT, "audience.kind"),
        (pb.Audience(recipient_ids=["bob"]), pb.CHANNEL_CHAT, "audience.kind"),  # recipients, no kind
        (pb.Audience(kind=9), pb.CHANNEL_CHAT, "audience.kind"),  # type: ignore[arg-type]
        (ROOM_WIDE, pb.CHANNEL_UNSPECIFIED, "channel"),
        (ROOM_WIDE, 9, "channel"),
    ],
    ids=["unset", "unspecified", "recipients-without-kind", "unknown-kind", "no-channel", "unknown-channel"],
)
def test_message_without_explicit_audience_or_channel_is_refused_and_not_stored(
    clients: Callable[[str], ChatClient], audience: pb.Audience | None, channel: int, field: str
) -> None:
    alice, bob = clients("alice"), clients("bob")
    room = alice.create_group("team", ["bob"])
    request = pb.SendMessageRequest(
        room_id=room.id,
        client_message_id="m1",
        body="private to bob",
        channel=channel,  # type: ignore[arg-type]
        audience=audience,
    )
    code, fields = refusal(lambda: alice.stub.SendMessage(request, metadata=alice.metadata, timeout=10))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {field})
    assert bob.history(room.id) == [] and alice.history(room.id) == []


def test_explicit_room_audience_is_still_a_broadcast(clients: Callable[[str], ChatClient]) -> None:
    alice, bob = clients("alice"), clients("bob")
    room = alice.create_group("team", ["bob"])
    alice.send(room.id, "hello all", audience=ROOM_WIDE)
    assert [m.body for m in bob.history(room.id)] == ["hello all"]


# -- Subscribe: a position is honoured or refused, never ignored --------------------


def test_position_after_the_rooms_end_is_out_of_range_not_a_silent_stream(
    clients: Callable[[str], ChatClient],
) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    alice.send(room.id, "one")
    request = pb.SubscribeRequest(
        room_ids=[room.id], positions=[pb.RoomPosition(room_id=room.id, after_sequence=100)]
    )
    assert subscribe_refusal(alice, request) == (
        grpc.StatusCode.OUT_OF_RANGE,
        {"positions[0].after_sequence"},
    )


def test_position_after_the_rooms_end_is_out_of_range_on_a_follow_all_stream(
    clients: Callable[[str], ChatClient],
) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    request = pb.SubscribeRequest(positions=[pb.RoomPosition(room_id=room.id, after_sequence=1)])
    assert subscribe_refusal(alice, request) == (
        grpc.StatusCode.OUT_OF_RANGE,
        {"positions[0].after_sequence"},
    )


def test_position_at_the_rooms_end_resumes_live(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    alice.send(room.id, "one")
    request = pb.SubscribeRequest(
        room_ids=[room.id], positions=[pb.RoomPosition(room_id=room.id, after_sequence=1)]
    )
    stream = alice.stub.Subscribe(request, metadata=alice.metadata, timeout=10)
    first = next(iter(stream))
    assert first.room_subscribed.last_sequence == 1
    stream.cancel()


@pytest.mark.parametrize("follow_all", [False, True], ids=["named-rooms", "follow-all"])
def test_position_for_a_room_of_others_is_permission_denied(
    clients: Callable[[str], ChatClient], follow_all: bool
) -> None:
    alice, mallory = clients("alice"), clients("mallory")
    private = alice.create_group("private")
    own = mallory.create_group("own")
    request = pb.SubscribeRequest(
        room_ids=[] if follow_all else [own.id],
        positions=[pb.RoomPosition(room_id=private.id, after_sequence=0)],
    )
    code, fields = subscribe_refusal(mallory, request)
    if follow_all:
        assert (code, fields) == (grpc.StatusCode.PERMISSION_DENIED, {"positions[0].room_id"})
    else:  # a position outside room_ids would be dropped: refused before membership is looked at
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"positions[0].room_id"})


def test_position_for_an_unknown_room_is_not_found(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    alice.create_group("team")
    request = pb.SubscribeRequest(positions=[pb.RoomPosition(room_id="nope", after_sequence=0)])
    assert subscribe_refusal(alice, request) == (grpc.StatusCode.NOT_FOUND, {"positions[0].room_id"})


def test_room_of_others_named_in_room_ids_is_permission_denied_naming_it(
    clients: Callable[[str], ChatClient],
) -> None:
    alice, mallory = clients("alice"), clients("mallory")
    own, private = mallory.create_group("own"), alice.create_group("private")
    request = pb.SubscribeRequest(room_ids=[own.id, private.id])
    assert subscribe_refusal(mallory, request) == (grpc.StatusCode.PERMISSION_DENIED, {"room_ids[1]"})


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        ("negative", "positions[0].after_sequence"),
        ("duplicate-position", "positions[1].room_id"),
        ("duplicate-room", "room_ids[1]"),
        ("unspecified-channel", "channels[0]"),
        ("unknown-channel", "channels[1]"),
    ],
)
def test_ambiguous_or_malformed_subscribe_is_invalid_argument(
    clients: Callable[[str], ChatClient], shape: str, field: str
) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    alice.send(room.id, "one")
    at = pb.RoomPosition(room_id=room.id, after_sequence=0)
    requests = {
        "negative": pb.SubscribeRequest(positions=[pb.RoomPosition(room_id=room.id, after_sequence=-1)]),
        "duplicate-position": pb.SubscribeRequest(
            positions=[at, pb.RoomPosition(room_id=room.id, after_sequence=1)]
        ),
        "duplicate-room": pb.SubscribeRequest(room_ids=[room.id, room.id]),
        "unspecified-channel": pb.SubscribeRequest(channels=[pb.CHANNEL_UNSPECIFIED]),
        "unknown-channel": pb.SubscribeRequest(channels=[pb.CHANNEL_VOICE, 7]),  # type: ignore[list-item]
    }
    assert subscribe_refusal(alice, requests[shape]) == (grpc.StatusCode.INVALID_ARGUMENT, {field})


# -- ListMessages: cursors and bounds --------------------------------------------------


def list_request(room_id: str, **fields: object) -> pb.ListMessagesRequest:
    return pb.ListMessagesRequest(room_id=room_id, **fields)  # type: ignore[arg-type]


def test_history_before_a_sequence_past_the_end_is_out_of_range(clients: Callable[[str], ChatClient]) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    for body in ("one", "two"):
        alice.send(room.id, body)
    newest = alice.stub.ListMessages(list_request(room.id, before_sequence=3), metadata=alice.metadata)
    assert [m.body for m in newest.messages] == ["two", "one"]  # last_sequence + 1: from the newest
    assert refusal(
        lambda: alice.stub.ListMessages(list_request(room.id, before_sequence=4), metadata=alice.metadata)
    ) == (grpc.StatusCode.OUT_OF_RANGE, {"before_sequence"})


@pytest.mark.parametrize("change", ["other-reader", "other-room", "other-channels", "other-before"])
def test_page_token_serves_only_the_request_that_earned_it(
    clients: Callable[[str], ChatClient], change: str
) -> None:
    alice, bob = clients("alice"), clients("bob")
    room = alice.create_group("team", ["bob"])
    other = alice.create_group("other", ["bob"])
    for i in range(3):
        alice.send(room.id, f"m{i}")
        alice.send(other.id, f"o{i}")
    first = alice.stub.ListMessages(list_request(room.id, page_size=1), metadata=alice.metadata)
    assert first.next_page_token
    token = first.next_page_token
    reader, request = {
        "other-reader": (bob, list_request(room.id, page_size=1, page_token=token)),
        "other-room": (alice, list_request(other.id, page_size=1, page_token=token)),
        "other-channels": (
            alice,
            list_request(room.id, page_size=1, page_token=token, channels=[pb.CHANNEL_CHAT]),
        ),
        "other-before": (alice, list_request(room.id, page_size=1, page_token=token, before_sequence=3)),
    }[change]
    assert refusal(lambda: reader.stub.ListMessages(request, metadata=reader.metadata)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        {"page_token"},
    )


@pytest.mark.parametrize("channels", [[pb.CHANNEL_UNSPECIFIED], [pb.CHANNEL_CHAT, 5]])
def test_history_channel_filter_refuses_unspecified_and_unknown_values(
    clients: Callable[[str], ChatClient], channels: list[int]
) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    request = list_request(room.id, channels=channels)
    code, fields = refusal(lambda: alice.stub.ListMessages(request, metadata=alice.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields == {f"channels[{len(channels) - 1}]"}


def test_history_filtered_by_channel_pages_through_that_channel_only(
    clients: Callable[[str], ChatClient],
) -> None:
    alice = clients("alice")
    room = alice.create_group("team")
    sent = [
        (pb.CHANNEL_CHAT, "c1"),
        (pb.CHANNEL_VOICE, "v1"),
        (pb.CHANNEL_TICKETS, "t1"),
        (pb.CHANNEL_VOICE, "v2"),
        (pb.CHANNEL_CHAT, "c2"),
        (pb.CHANNEL_VOICE, "v3"),
    ]
    for channel, body in sent:
        alice.send(room.id, body, channel=channel)
    seen: list[str] = []
    token = ""
    while True:
        page = alice.stub.ListMessages(
            list_request(room.id, page_size=2, page_token=token, channels=[pb.CHANNEL_VOICE]),
            metadata=alice.metadata,
        )
        seen += [m.body for m in page.messages]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["v3", "v2", "v1"]
    both = alice.history(room.id, channels=[pb.CHANNEL_CHAT, pb.CHANNEL_VOICE])
    assert [m.body for m in both] == ["c1", "v1", "v2", "c2", "v3"]
