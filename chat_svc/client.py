"""A chat client for programs (the console, tests, the benchmark): thin calls plus
a `Follower` that keeps a Subscribe stream open in a thread and reconnects by
itself (to the next target) with resume positions, so it sees every message of
its rooms once and in order."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.chat.v1 import chat_service_pb2 as pb
from switchboard.chat.v1 import chat_service_pb2_grpc

from mesh.client import bearer

log = logging.getLogger(__name__)

# answers a resubscription cannot cure (but see Follower._forget_lost_rooms)
REFUSED = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
)


class ChatClient:
    """Unary calls of ChatService with the caller's token."""

    def __init__(self, target: str, token: str) -> None:
        self.target = target
        self.token = token
        self.channel = grpc.insecure_channel(target)
        self.stub = chat_service_pb2_grpc.ChatServiceStub(self.channel)
        self.metadata = bearer(token)

    def close(self) -> None:
        self.channel.close()

    def create_group(self, name: str, members: Sequence[str] = ()) -> pb.Room:
        request = pb.CreateRoomRequest(
            kind=pb.ROOM_KIND_GROUP, display_name=name, member_ids=list(members), request_id=uuid.uuid4().hex
        )
        return self.stub.CreateRoom(request, metadata=self.metadata, timeout=10).room

    def send(
        self,
        room_id: str,
        body: str,
        *,
        client_message_id: str = "",
        audience: pb.Audience | None = None,
        channel: int = pb.CHANNEL_CHAT,
    ) -> pb.Message:
        """Without `audience`, to the whole room: said explicitly on the wire, because
        the server refuses a message that does not say who may see it."""
        request = pb.SendMessageRequest(
            room_id=room_id,
            client_message_id=client_message_id or uuid.uuid4().hex,
            body=body,
            channel=channel,  # type: ignore[arg-type]
            audience=audience or pb.Audience(kind=pb.AUDIENCE_KIND_ROOM),
        )
        return self.stub.SendMessage(request, metadata=self.metadata, timeout=10).message

    def history(self, room_id: str, page_size: int = 20, channels: Sequence[int] = ()) -> list[pb.Message]:
        """The newest messages (on `channels`; empty: all), oldest first."""
        request = pb.ListMessagesRequest(
            room_id=room_id,
            page_size=page_size,
            channels=list(channels),  # type: ignore[arg-type]
        )
        response = self.stub.ListMessages(request, metadata=self.metadata, timeout=10)
        return list(reversed(response.messages))


@dataclass
class Follower:
    """Follows rooms across reconnects: `positions` is the last sequence seen per
    room (addressed to us or not, from RoomSubscribed and messages)."""

    targets: list[str]
    token: str
    room_ids: list[str]
    positions: dict[str, int] = field(default_factory=dict)
    channels: list[int] = field(default_factory=list)  # only these channels; empty: all
    on_message: Callable[[pb.Message], None] | None = None
    on_event: Callable[[pb.SubscribeResponse], None] | None = None
    retry_delay_s: float = 0.2
    messages: list[pb.Message] = field(default_factory=list)
    errors: list[grpc.StatusCode] = field(default_factory=list)
    reconnects: int = 0
    subscribed: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _call: grpc.Future | None = None

    def start(self) -> Follower:
        self._thread = threading.Thread(target=self._run, name="chat-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(5)

    def bodies(self, room_id: str | None = None) -> list[str]:
        return [m.body for m in self.messages if room_id is None or m.room_id == room_id]

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            target = self.targets[attempt % len(self.targets)]
            try:
                self._follow(target)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                if self._stopping.is_set():
                    return
                self.errors.append(code)
                if code in REFUSED:
                    if self._forget_lost_rooms(exc):
                        continue  # only positions of rooms we no longer have: resubscribe without them
                    log.error("subscribe refused: %s", code)
                    return
                if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    attempt += 1  # the replica is gone: try the next one
            self.reconnects += 1
            self._stopping.wait(self.retry_delay_s)

    def _forget_lost_rooms(self, error: grpc.RpcError) -> bool:
        """A follow-all stream whose positions name rooms it lost (left, removed)
        while away: drop those positions. True when that is all that was wrong."""
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None  # type: ignore[arg-type]
        if self.room_ids or status is None or not status.details:
            return False
        bad = error_details_pb2.BadRequest()
        if not status.details[0].Unpack(bad):
            return False
        rooms = list(self.positions)
        lost = set()
        for violation in bad.field_violations:
            index = violation.field.removeprefix("positions[").removesuffix("].room_id")
            if not index.isdigit() or int(index) >= len(rooms):
                return False
            lost.add(rooms[int(index)])
        for room_id in lost:
            del self.positions[room_id]
        return bool(lost)

    def _follow(self, target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = chat_service_pb2_grpc.ChatServiceStub(channel)
            request = pb.SubscribeRequest(
                room_ids=self.room_ids,
                positions=[pb.RoomPosition(room_id=r, after_sequence=s) for r, s in self.positions.items()],
                channels=self.channels,  # type: ignore[arg-type]
            )
            call = stub.Subscribe(request, metadata=bearer(self.token))
            self._call = call
            for response in call:
                self._handle(response)

    def _handle(self, response: pb.SubscribeResponse) -> None:
        which = response.WhichOneof("event")
        if which == "message":
            message = response.message
            if message.sequence <= self.positions.get(message.room_id, 0):
                return  # defensive: the server promises no duplicate
            self.positions[message.room_id] = message.sequence
            self.messages.append(message)
            if self.on_message is not None:
                self.on_message(message)
        elif which == "room_unsubscribed":
            self.positions.pop(response.room_unsubscribed.room_id, None)  # no longer ours to resume
        elif which == "room_subscribed":
            room = response.room_subscribed
            self.positions[room.room_id] = max(self.positions.get(room.room_id, 0), room.last_sequence)
            if all(r in self.positions for r in self.room_ids):
                self.subscribed.set()
        if self.on_event is not None:
            self.on_event(response)

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.subscribed.wait(0.05):
                return True
        return False
