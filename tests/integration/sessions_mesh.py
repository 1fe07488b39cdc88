"""session_svc (and chat_svc when a test needs rooms) as real processes for the
session tests: each with its own database, both on the test's exchange, and stubs
that call them as a given user."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.chat.v1 import chat_service_pb2 as chat_pb
from switchboard.session.v1 import session_service_pb2 as pb
from switchboard.session.v1 import session_service_pb2_grpc

from chat_svc.client import ChatClient
from mesh.client import bearer
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import ServiceProcess

# Long paid times in the tests that drive changes by hand: no timer fires meanwhile.
NO_TIMERS = {"SESSION_WARNING_BEFORE_S": "1", "SESSION_RECHARGE_GRACE_S": "30", "TIMERS_LEASE_TTL_S": "5"}


def start_chat_for_sessions(
    start: Callable[..., ServiceProcess], isolation: dict[str, str]
) -> ServiceProcess:
    """chat_svc in a database of its own (session_svc has an outbox collection too)."""
    return start_chat(start, MONGO_DB=f"{isolation['MONGO_DB']}_chat", CHAT_MEMBERSHIP_CHECK_S="0.5")


def start_sessions(start: Callable[..., ServiceProcess], chat_target: str, **env: str) -> ServiceProcess:
    return start("session_svc", CHAT_TARGET=chat_target, **{**NO_TIMERS, **env})


def field_violations(exc: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None and status.details, f"no details in {exc}"
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return {v.field for v in bad_request.field_violations}


@dataclass
class SessionUser:
    """SessionService as one user (closes its channel with `close`)."""

    target: str
    token: str
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.target)
        self.stub = session_service_pb2_grpc.SessionServiceStub(self.channel)
        self.metadata = bearer(self.token)

    def start(
        self, advisor: str = "bob", seconds: int = 600, room_id: str = "", request_id: str = ""
    ) -> pb.Session:
        request = pb.StartSessionRequest(
            advisor_id=advisor,
            prepaid_seconds=seconds,
            room_id=room_id,
            request_id=request_id or uuid.uuid4().hex,
        )
        return self.stub.StartSession(request, metadata=self.metadata, timeout=15).session

    def get(self, session_id: str) -> pb.Session:
        request = pb.GetSessionRequest(session_id=session_id)
        return self.stub.GetSession(request, metadata=self.metadata, timeout=10).session

    def list(self) -> list[pb.Session]:
        return list(
            self.stub.ListSessions(pb.ListSessionsRequest(), metadata=self.metadata, timeout=10).sessions
        )

    def recharge(self, session_id: str, seconds: int) -> pb.Session:
        request = pb.RechargeRequest(session_id=session_id, seconds=seconds, request_id=uuid.uuid4().hex)
        return self.stub.Recharge(request, metadata=self.metadata, timeout=15).session

    def end(self, session_id: str) -> pb.Session:
        request = pb.EndSessionRequest(session_id=session_id)
        return self.stub.EndSession(request, metadata=self.metadata, timeout=15).session

    def watch(self, session_id: str, after_version: int = 0, timeout_s: float = 60) -> Watch:
        request = pb.WatchSessionRequest(session_id=session_id, after_version=after_version)
        return Watch(self.stub.WatchSession(request, metadata=self.metadata, timeout=timeout_s))

    def close(self) -> None:
        self.channel.close()


class Watch:
    """A WatchSession stream read in a thread: `updates` grows as messages arrive."""

    def __init__(self, call: grpc.Call) -> None:
        self.call = call
        self.updates: list[pb.WatchSessionResponse] = []
        self.headers = threading.Event()
        self.ended = threading.Event()
        self.error: grpc.RpcError | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            self.call.initial_metadata()  # type: ignore[attr-defined]
            self.headers.set()
            for update in self.call:  # type: ignore[attr-defined]
                self.updates.append(update)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def changes(self) -> list[pb.WatchSessionResponse]:
        """Everything but the TICKs."""
        return [u for u in self.updates if u.kind != pb.SESSION_UPDATE_KIND_TICK]

    def versions(self) -> list[int]:
        return [u.session.version for u in self.changes()]

    def cancel(self) -> None:
        self.call.cancel()  # type: ignore[attr-defined]


def direct_room(chat: ServiceProcess, token: Callable[..., str], owner: str, other: str) -> chat_pb.Room:
    client = ChatClient(chat.target, token(owner, "customer"))
    try:
        request = chat_pb.CreateRoomRequest(kind=chat_pb.ROOM_KIND_DIRECT, member_ids=[other], request_id="d")
        return client.stub.CreateRoom(request, metadata=client.metadata, timeout=10).room
    finally:
        client.close()


def system_messages(chat: ServiceProcess, token: str, room_id: str) -> list[chat_pb.Message]:
    client = ChatClient(chat.target, token)
    try:
        return [m for m in client.history(room_id, page_size=100) if m.kind == chat_pb.MESSAGE_KIND_SYSTEM]
    except grpc.RpcError:
        return []  # the room does not exist yet
    finally:
        client.close()
