"""The cross-user matrix (issue #16, "How this is checked"). User B (a customer) owns
rooms of every kind with messages, orders, sessions and jobs; every other user (a
customer, an advisor, an operator and a service account) tries every RPC that names
or lists B's resources, over native gRPC straight to the service, over gRPC through
the gateway and over REST through the gateway (real Envoy). Each try is refused
(PERMISSION_DENIED or NOT_FOUND; REST 403/404 with google.rpc.Status JSON), lists and
streams never carry B's data, and B's data read back with B's token is unchanged.
Operators and services read every user's resources where the table lets them call an
RPC at all (mesh.auth.PRIVILEGED_ROLES): those pairs are left out, the rest is tried.
Also: ids in a REST body that differ from the path, page tokens and filters naming B,
a live stream, SESSION rooms squatted by another user, members who do not own a room.

The matrix is driven by the descriptor: every RPC of gen/switchboard.pb is either in
MATRIX or in NOT_RESOURCE_SCOPED with the reason, and an RPC whose request names a
resource (an `*_id` field, ids, positions, a page token) may not be in the second."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.admin.v1 import event_admin_pb2 as apb
from switchboard.chat.v1 import chat_service_pb2 as cpb
from switchboard.events.v1 import session_events_pb2 as se
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.registration.v1 import registration_service_pb2 as rpb
from switchboard.scheduler.v1 import scheduler_service_pb2 as schpb
from switchboard.session.v1 import session_service_pb2 as spb
from switchboard.type.v1 import money_pb2

from mesh.auth import PRIVILEGED_ROLES, ROLE_NAMES
from mesh.bus import Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.events import new_event
from mesh.openapi import RpcMethod, rest_methods, rpc_methods
from mesh.processes import wait_until
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, Response
from tests.security.fuzz import import_contracts, message_class
from tests.support.processes import RABBITMQ_URL

import_contracts()
POOL = descriptor_pool.Default()
DENIED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
REST_DENIED = (403, 404)
# A page token from another caller's listing may also be refused as not ours.
TOKEN_REFUSED = (*DENIED, grpc.StatusCode.INVALID_ARGUMENT)
EVENT_ADMIN = "switchboard.admin.v1.EventAdminService"
SUFFIX = uuid.uuid4().hex[:8]
OWNER = f"bob-{SUFFIX}"  # user B, a customer
PEER = f"carol-{SUFFIX}"  # B's advisor and the other member of B's rooms
PEER2 = f"dan-{SUFFIX}"  # B's second advisor (a second session for paging)
# User A in every role but admin: same role as B, each other role.
INTRUDERS = (
    (f"eve-{SUFFIX}", "customer"),
    (f"erin-{SUFFIX}", "advisor"),
    (f"oscar-{SUFFIX}", "operator"),
    (f"svc-{SUFFIX}", "service"),
)
MARK = f"secret-of-bob-{SUFFIX}"  # in every body B writes: must never reach A

# Requests of these RPCs name no other user's resource; each with its reason.
NOT_RESOURCE_SCOPED: dict[str, str] = {
    "/switchboard.order.v1.OrderService/PlaceOrder": "creates the caller's own order (from the token)",
    "/switchboard.registration.v1.RegistrationService/SubmitJob": "creates the caller's own job",
}
# Fields of a request that name no resource (client-chosen keys, sizes, filters).
NOT_NAMING = {"request_id", "client_message_id", "idempotency_key"}
# What the matrix deliberately leaves to the contract, each with its reason.
ALLOWED_BY_CONTRACT = {
    ("/switchboard.chat.v1.ChatService/JoinRoom", "group"): "a GROUP room is one anybody may join (RoomKind)",
}


@dataclass
class World:
    """B's resources (the ids, a page token of each listing) and the intruders' own."""

    orders: list[str]
    rooms: dict[str, str]  # kind (group, direct, session) -> room id
    sessions: list[str]
    jobs: list[str]
    messages: list[str]
    tokens: dict[str, str]  # listing -> B's next_page_token with page_size 1

    def secrets(self, sent: bytes = b"") -> list[str]:
        """Strings that only B's data contains, but for those the caller `sent` (an id
        named in the request may come back in its error message)."""
        every = [MARK, *self.orders, *self.rooms.values(), *self.sessions, *self.jobs, *self.messages]
        return [s for s in every if s.encode() not in sent]


Build = Callable[[World], Message]


@dataclass(frozen=True)
class Case:
    """One RPC with a request naming B's resources, and what a non-owner must get.

    expect: "denied" (PERMISSION_DENIED or NOT_FOUND), "list" (served, none of B's
    data), "token" (B's page token: refused, also as INVALID_ARGUMENT, or served
    without B's data), "noop" (refused, or served and nothing of B's changed: LeaveRoom
    of a room one is not in is a no-op by contract)."""

    rpc: str
    label: str
    build: Build
    expect: str = "denied"

    @property
    def method(self) -> RpcMethod:
        return METHODS[self.rpc]


METHODS = {m.grpc_path: m for m in rpc_methods()}
ORD = "/switchboard.order.v1.OrderService/"
C = "/switchboard.chat.v1.ChatService/"
S = "/switchboard.session.v1.SessionService/"
R = "/switchboard.registration.v1.RegistrationService/"
SA = "/switchboard.scheduler.v1.SchedulerAdminService/"
AC = "/switchboard.activity.v1.ActivityService/"
EA = f"/{EVENT_ADMIN}/"
KINDS = ("group", "direct", "session")


def _later(seconds: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(time.time()) + seconds)
    return stamp


def _on(kind: str, make: Callable[[str, World], Message]) -> Build:
    """A request naming B's room of `kind`."""
    return lambda w: make(w.rooms[kind], w)


def _room_cases() -> list[Case]:
    def send(room: str, w: World) -> Message:
        return cpb.SendMessageRequest(
            room_id=room,
            client_message_id=uuid.uuid4().hex,
            body="intruder",
            channel=cpb.CHANNEL_CHAT,
            audience=cpb.Audience(kind=cpb.AUDIENCE_KIND_ROOM),
        )

    def start(room: str, w: World) -> Message:
        return spb.StartSessionRequest(
            advisor_id=PEER, prepaid_seconds=600, room_id=room, request_id=uuid.uuid4().hex
        )

    def position(room: str, w: World) -> Message:
        return cpb.SubscribeRequest(positions=[cpb.RoomPosition(room_id=room, after_sequence=0)])

    cases = []
    for kind in KINDS:
        cases += [
            Case(C + "GetRoom", kind, _on(kind, lambda r, w: cpb.GetRoomRequest(room_id=r))),
            Case(C + "JoinRoom", kind, _on(kind, lambda r, w: cpb.JoinRoomRequest(room_id=r))),
            Case(C + "LeaveRoom", kind, _on(kind, lambda r, w: cpb.LeaveRoomRequest(room_id=r)), "noop"),
            Case(
                C + "AddMember",
                f"{kind} self",
                _on(kind, lambda r, w: cpb.AddMemberRequest(room_id=r, user_id=INTRUDERS[0][0])),
            ),
            Case(
                C + "AddMember",
                f"{kind} third user",
                _on(kind, lambda r, w: cpb.AddMemberRequest(room_id=r, user_id=f"zed-{SUFFIX}")),
            ),
            Case(
                C + "RemoveMember",
                kind,
                _on(kind, lambda r, w: cpb.RemoveMemberRequest(room_id=r, user_id=PEER)),
            ),
            Case(
                C + "RemoveMember",
                f"{kind} owner",
                _on(kind, lambda r, w: cpb.RemoveMemberRequest(room_id=r, user_id=OWNER)),
            ),
            Case(C + "SendMessage", kind, _on(kind, send)),
            Case(C + "ListMessages", kind, _on(kind, lambda r, w: cpb.ListMessagesRequest(room_id=r))),
            Case(
                C + "ListMessages",
                f"{kind} with B's page token",
                _on(kind, lambda r, w: cpb.ListMessagesRequest(room_id=r, page_token=w.tokens["messages"])),
                "token",
            ),
            Case(C + "ListPresence", kind, _on(kind, lambda r, w: cpb.ListPresenceRequest(room_id=r))),
            Case(
                C + "Subscribe",
                f"{kind} room_ids",
                _on(kind, lambda r, w: cpb.SubscribeRequest(room_ids=[r])),
            ),
            # Known hole (chat helper): a position for a room one is not in.
            Case(C + "Subscribe", f"{kind} positions", _on(kind, position)),
            # Known hole (session helper): a session bound to somebody else's room.
            Case(S + "StartSession", f"room_id of B's {kind} room", _on(kind, start)),
        ]
    return [c for c in cases if (c.rpc, c.label) not in ALLOWED_BY_CONTRACT]


def _matrix() -> list[Case]:
    order, session, job = (lambda w: w.orders[0]), (lambda w: w.sessions[0]), (lambda w: w.jobs[0])
    return [
        Case(ORD + "GetOrder", "", lambda w: opb.GetOrderRequest(order_id=order(w))),
        Case(ORD + "CancelOrder", "", lambda w: opb.CancelOrderRequest(order_id=order(w))),
        Case(ORD + "ListOrders", "", lambda w: opb.ListOrdersRequest(page_size=1000), "list"),
        Case(ORD + "ListOrders", "customer_id of B", lambda w: opb.ListOrdersRequest(customer_id=OWNER)),
        Case(
            ORD + "ListOrders",
            "B's page token",
            lambda w: opb.ListOrdersRequest(page_token=w.tokens["orders"]),
            "token",
        ),
        *_room_cases(),
        Case(C + "ListRooms", "", lambda w: cpb.ListRoomsRequest(page_size=1000), "list"),
        Case(
            C + "ListRooms",
            "B's page token",
            lambda w: cpb.ListRoomsRequest(page_token=w.tokens["rooms"]),
            "token",
        ),
        Case(
            C + "CreateRoom",
            "SESSION room for B's session",
            lambda w: cpb.CreateRoomRequest(
                kind=cpb.ROOM_KIND_SESSION,
                display_name="squat",
                member_ids=[PEER],
                session_id=w.sessions[1],
                request_id=uuid.uuid4().hex,
            ),
            "noop",  # what it may do is test_a_session_room_made_up_by_another_user_...
        ),
        Case(
            S + "StartSession",
            "customer_id of B",
            lambda w: spb.StartSessionRequest(
                customer_id=OWNER, advisor_id=PEER, prepaid_seconds=600, request_id=uuid.uuid4().hex
            ),
        ),
        Case(S + "GetSession", "", lambda w: spb.GetSessionRequest(session_id=session(w))),
        Case(
            S + "Recharge",
            "",
            lambda w: spb.RechargeRequest(session_id=session(w), seconds=60, request_id=uuid.uuid4().hex),
        ),
        Case(S + "EndSession", "", lambda w: spb.EndSessionRequest(session_id=session(w))),
        Case(S + "WatchSession", "", lambda w: spb.WatchSessionRequest(session_id=session(w))),
        Case(S + "ListSessions", "", lambda w: spb.ListSessionsRequest(page_size=1000), "list"),
        Case(
            S + "ListSessions",
            "B's page token",
            lambda w: spb.ListSessionsRequest(page_token=w.tokens["sessions"]),
            "token",
        ),
        Case(R + "GetJob", "", lambda w: rpb.GetJobRequest(job_id=job(w))),
        Case(R + "CancelJob", "", lambda w: rpb.CancelJobRequest(job_id=job(w))),
        Case(R + "WatchJob", "", lambda w: rpb.WatchJobRequest(job_id=job(w))),
        Case(R + "ListJobs", "", lambda w: rpb.ListJobsRequest(page_size=1000), "list"),
        Case(R + "ListJobDefinitions", "", lambda w: rpb.ListJobDefinitionsRequest(page_size=1000), "list"),
        Case(
            R + "ListJobs",
            "B's page token",
            lambda w: rpb.ListJobsRequest(page_token=w.tokens["jobs"]),
            "token",
        ),
        # The admin surfaces: every non-privileged role is refused by the table.
        Case(SA + "GetJob", "", lambda w: schpb.GetJobRequest(job_id=job(w))),
        Case(SA + "CancelJob", "", lambda w: schpb.CancelJobRequest(job_id=job(w))),
        Case(SA + "RetryJob", "", lambda w: schpb.RetryJobRequest(job_id=job(w))),
        Case(SA + "ListJobs", "owner_id of B", lambda w: schpb.ListJobsRequest(owner_id=OWNER)),
        Case(
            AC + "GetDailyStats",
            "",
            lambda w: message_class("switchboard.activity.v1.GetDailyStatsRequest")(date=_today()),
        ),
        Case(
            AC + "ListDailyStats",
            "",
            lambda w: message_class("switchboard.activity.v1.ListDailyStatsRequest")(),
        ),
        Case(
            AC + "WatchStats",
            "",
            lambda w: message_class("switchboard.activity.v1.WatchStatsRequest")(date=_today()),
        ),
        Case(EA + "ListOutboxMessages", "", lambda w: apb.ListOutboxMessagesRequest()),
        Case(EA + "ReplayOutboxMessages", "", lambda w: apb.ReplayOutboxMessagesRequest(all_failed=True)),
        Case(EA + "ListDeadLetters", "", lambda w: apb.ListDeadLettersRequest()),
        Case(EA + "ReplayDeadLetters", "", lambda w: apb.ReplayDeadLettersRequest()),
    ]


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


MATRIX = _matrix()


# -- the completeness check (no mesh needed) -----------------------------------------


def _names_a_resource(method: RpcMethod) -> list[str]:
    descriptor = POOL.FindMessageTypeByName(method.input_type)
    return [
        f.name
        for f in descriptor.fields
        if f.name not in NOT_NAMING
        and (f.name.endswith(("_id", "_ids")) or f.name in {"ids", "positions", "page_token"})
    ]


def test_every_rpc_is_in_the_matrix_or_declared_not_resource_scoped() -> None:
    covered = {case.rpc for case in MATRIX} | {rpc for rpc, _ in ALLOWED_BY_CONTRACT}
    missing = [m.grpc_path for m in rpc_methods() if m.grpc_path not in covered | set(NOT_RESOURCE_SCOPED)]
    assert missing == [], f"add a cross-user case or a justified exception for: {missing}"
    both = covered & set(NOT_RESOURCE_SCOPED)
    assert both == set()
    stale = set(NOT_RESOURCE_SCOPED) - set(METHODS)
    assert stale == set(), f"no longer in the contracts: {stale}"
    naming = {path: _names_a_resource(METHODS[path]) for path in NOT_RESOURCE_SCOPED}
    assert {p: f for p, f in naming.items() if f} == {}, "these requests name a resource: put them in MATRIX"


def test_every_rest_route_with_a_path_id_and_a_body_has_a_body_versus_path_case() -> None:
    routes = {m.grpc_path for m in rest_methods() if m.http_body == "*" and m.path_params}
    assert routes - set(BODY_VERSUS_PATH) == set()


# -- B's world ---------------------------------------------------------------------


def _unary(channel: grpc.Channel, path: str, request: Message, who: tuple[tuple[str, str], ...]) -> Any:
    method = METHODS[path]
    call = channel.unary_unary(
        path,
        request_serializer=type(request).SerializeToString,
        response_deserializer=message_class(method.output_type).FromString,
    )
    return call(request, metadata=who, timeout=10)


def _host(whole_mesh: Gateway, method: RpcMethod) -> list[str]:
    """The processes serving `method` straight (the event admin: every service)."""
    if method.service == EVENT_ADMIN:
        return [p.target for p in whole_mesh.services.values()]
    return [whole_mesh.services[s.name].target for s in SERVICES if method.service in s.grpc_services]


def _place(channel: grpc.Channel, who: tuple[tuple[str, str], ...]) -> str:
    price = money_pb2.Money(currency_code="EUR", amount_minor=100)
    line = opb.LineItem(sku="s", quantity=1, unit_price=price)
    request = opb.PlaceOrderRequest(lines=[line], idempotency_key=uuid.uuid4().hex)
    return str(_unary(channel, ORD + "PlaceOrder", request, who).order.id)


def _room(channel: grpc.Channel, who: tuple[tuple[str, str], ...], kind: int, members: list[str]) -> str:
    request = cpb.CreateRoomRequest(
        kind=kind, display_name="room", member_ids=members, request_id=uuid.uuid4().hex
    )
    return str(_unary(channel, C + "CreateRoom", request, who).room.id)


def _send(channel: grpc.Channel, who: tuple[tuple[str, str], ...], room: str, body: str, to: str = "") -> str:
    audience = (
        cpb.Audience(kind=cpb.AUDIENCE_KIND_MEMBER, recipient_ids=[to])
        if to
        else cpb.Audience(kind=cpb.AUDIENCE_KIND_ROOM)
    )
    request = cpb.SendMessageRequest(
        room_id=room,
        client_message_id=uuid.uuid4().hex,
        body=body,
        audience=audience,
        channel=cpb.CHANNEL_CHAT,
    )
    return str(_unary(channel, C + "SendMessage", request, who).message.message_id)


def _start(channel: grpc.Channel, who: tuple[tuple[str, str], ...], advisor: str) -> str:
    request = spb.StartSessionRequest(advisor_id=advisor, prepaid_seconds=3600, request_id=uuid.uuid4().hex)
    return str(_unary(channel, S + "StartSession", request, who).session.id)


def _submit(channel: grpc.Channel, who: tuple[tuple[str, str], ...]) -> str:
    # Scheduled an hour ahead: the job stays cancellable for the whole module.
    request = rpb.SubmitJobRequest(definition="noop", idempotency_key=uuid.uuid4().hex, run_at=_later(3600))
    return str(_unary(channel, R + "SubmitJob", request, who).job.id)


def _session_room(channel: grpc.Channel, who: tuple[tuple[str, str], ...], session_id: str) -> str:
    """The SESSION room chat_svc creates from the session's events."""
    found: list[str] = []

    def appeared() -> bool:
        listed = _unary(channel, C + "ListRooms", cpb.ListRoomsRequest(kind=cpb.ROOM_KIND_SESSION), who)
        found[:] = [r.id for r in listed.rooms if r.session_id == session_id]
        return bool(found)

    assert wait_until(appeared, 30, 0.2), f"no SESSION room for session {session_id}"
    return found[0]


@pytest.fixture(scope="module")
def world(whole_mesh: Gateway, token: Callable[..., str]) -> World:
    owner, peer = bearer(token(OWNER, "customer")), bearer(token(PEER, "advisor"))
    with grpc.insecure_channel(whole_mesh.address) as channel:
        orders = [_place(channel, owner) for _ in range(2)]
        sessions = [_start(channel, owner, PEER), _start(channel, owner, PEER2)]
        rooms = {
            "group": _room(channel, owner, cpb.ROOM_KIND_GROUP, [PEER]),
            "direct": _room(channel, owner, cpb.ROOM_KIND_DIRECT, [PEER]),
            "session": _session_room(channel, owner, sessions[0]),
        }
        messages = []
        for room in rooms.values():
            messages += [
                _send(channel, owner, room, f"{MARK} to all"),
                _send(channel, owner, room, f"{MARK} to carol", to=PEER),
                _send(channel, peer, room, f"{MARK} from carol"),
            ]
        jobs = [_submit(channel, owner) for _ in range(2)]
        first_pages = {
            "orders": (ORD + "ListOrders", opb.ListOrdersRequest(page_size=1)),
            "rooms": (C + "ListRooms", cpb.ListRoomsRequest(page_size=1)),
            "sessions": (S + "ListSessions", spb.ListSessionsRequest(page_size=1)),
            "jobs": (R + "ListJobs", rpb.ListJobsRequest(page_size=1)),
            "messages": (C + "ListMessages", cpb.ListMessagesRequest(room_id=rooms["group"], page_size=1)),
        }
        tokens = {
            name: _unary(channel, path, request, owner).next_page_token
            for name, (path, request) in first_pages.items()
        }
    assert all(tokens.values()), tokens
    return World(orders, rooms, sessions, jobs, messages, tokens)


def _snapshot(whole_mesh: Gateway, token: Callable[..., str], world: World) -> dict[str, Any]:
    """B's data as B (and B's peer) read it; only what nobody but B may change."""
    owner, peer = bearer(token(OWNER, "customer")), bearer(token(PEER, "advisor"))
    seen: dict[str, Any] = {}
    with grpc.insecure_channel(whole_mesh.address) as channel:
        for order in world.orders:
            seen[f"order {order}"] = json_format.MessageToDict(
                _unary(channel, ORD + "GetOrder", opb.GetOrderRequest(order_id=order), owner)
            )
        for kind, room in world.rooms.items():
            seen[f"room {kind}"] = json_format.MessageToDict(
                _unary(channel, C + "GetRoom", cpb.GetRoomRequest(room_id=room), owner)
            )
            for name, who in (("B", owner), ("peer", peer)):
                listed = _unary(
                    channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=room, page_size=1000), who
                )
                seen[f"messages {kind} as {name}"] = json_format.MessageToDict(listed)
        seen["rooms of B"] = [
            r.id for r in _unary(channel, C + "ListRooms", cpb.ListRoomsRequest(page_size=1000), owner).rooms
        ]
        for session in world.sessions:
            got = _unary(channel, S + "GetSession", spb.GetSessionRequest(session_id=session), owner).session
            seen[f"session {session}"] = {
                "customer": got.customer_id,
                "advisor": got.advisor_id,
                "state": got.state,
                "paid_until": got.paid_until.ToJsonString(),
                "paid_seconds_total": got.paid_seconds_total,
                "end_time": got.end_time.ToJsonString(),
            }
        for job in world.jobs:
            got = _unary(channel, R + "GetJob", rpb.GetJobRequest(job_id=job), owner).job
            seen[f"job {job}"] = {
                "owner": got.owner_id,
                "definition": got.definition,
                "run_at": got.run_at.ToJsonString(),
                "cancelled": got.status in (rpb.JOB_STATUS_CANCELLED, rpb.JOB_STATUS_CANCELLING),
                "attempt": got.attempt,
            }
    return seen


@pytest.fixture
def unchanged(whole_mesh: Gateway, token: Callable[..., str], world: World) -> Iterator[None]:
    """B's data is the same after the test as before it."""
    before = _snapshot(whole_mesh, token, world)
    yield
    after = _snapshot(whole_mesh, token, world)
    changed = [key for key in before if before[key] != after.get(key)]
    detail = {key: (before[key], after.get(key)) for key in changed[:2]}
    assert changed == [], json.dumps(detail, default=str)[:3000]


# -- calling -------------------------------------------------------------------------


@dataclass
class Answer:
    """What one try got: a gRPC code (OK when served) and the bytes it received."""

    code: grpc.StatusCode
    payload: bytes = b""
    details: str = ""


def _try(
    channel: grpc.Channel, method: RpcMethod, request: Message, who: tuple[tuple[str, str], ...]
) -> Answer:
    data = request.SerializeToString()
    try:
        if method.server_streaming:
            call = channel.unary_stream(method.grpc_path, None, None)(data, metadata=who, timeout=3)
            received = b""
            try:
                for item in call:  # a stream that serves delivers its first message at once
                    received += item
                    break
            finally:
                call.cancel()
            return Answer(grpc.StatusCode.OK, received)
        return Answer(
            grpc.StatusCode.OK,
            channel.unary_unary(method.grpc_path, None, None)(data, metadata=who, timeout=10),
        )
    except grpc.RpcError as error:
        if not isinstance(error, grpc.Call):
            return Answer(grpc.StatusCode.UNKNOWN)
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            # An open stream with nothing to send yet was served all the same.
            return Answer(grpc.StatusCode.OK)
        return Answer(error.code(), details=error.details() or "")


def _allowed_by_role(role: str, method: RpcMethod) -> bool:
    return role in {ROLE_NAMES[r] for r in method.roles}


def _exempt(role: str, method: RpcMethod) -> bool:
    """Admins, operators and services see every user's resources where the table lets
    them call the RPC at all (mesh.auth.PRIVILEGED_ROLES, the contracts' owner_scoped)."""
    return role in PRIVILEGED_ROLES and _allowed_by_role(role, method)


def _judge(case: Case, role: str, answer: Answer, secrets: list[str]) -> str | None:
    """Why `answer` is wrong for `case` tried by `role`, or None."""
    leaked = [s for s in secrets if s.encode() in answer.payload]
    if leaked:
        return f"served B's data {leaked[:3]}"
    if not _allowed_by_role(role, case.method):
        ok = answer.code == grpc.StatusCode.PERMISSION_DENIED
        return None if ok else f"{answer.code.name} where the table refuses the role"
    allowed = {
        "denied": DENIED,
        "list": (grpc.StatusCode.OK,),
        "token": (*TOKEN_REFUSED, grpc.StatusCode.OK),
        "noop": (*DENIED, grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS),
    }[case.expect]
    return None if answer.code in allowed else f"{answer.code.name} {answer.details[:80]}"


def _cases_for(role: str) -> list[Case]:
    return [c for c in MATRIX if not _exempt(role, c.method)]


def _ids(case: Case) -> str:
    return f"{case.rpc.rsplit('.', 1)[-1]} {case.label}".strip()


@pytest.mark.parametrize("user,role", INTRUDERS, ids=[r for _, r in INTRUDERS])
def test_every_rpc_on_b_resources_is_refused_straight_to_the_service(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None, user: str, role: str
) -> None:
    who = bearer(token(user, role))
    wrong = []
    for case in _cases_for(role):
        for target in _host(whole_mesh, case.method):
            with grpc.insecure_channel(target) as channel:
                request = case.build(world)
                answer = _try(channel, case.method, request, who)
                problem = _judge(case, role, answer, world.secrets(request.SerializeToString()))
            if problem:
                wrong.append(f"{_ids(case)} @{target}: {problem}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("user,role", INTRUDERS, ids=[r for _, r in INTRUDERS])
def test_every_rpc_on_b_resources_is_refused_over_grpc_through_the_gateway(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None, user: str, role: str
) -> None:
    who = bearer(token(user, role))
    wrong = []
    with grpc.insecure_channel(whole_mesh.address) as channel:
        for case in _cases_for(role):
            if case.method.service == EVENT_ADMIN:
                continue  # not routed by the gateway (operators call each service)
            request = case.build(world)
            answer = _try(channel, case.method, request, who)
            problem = _judge(case, role, answer, world.secrets(request.SerializeToString()))
            if problem:
                wrong.append(f"{_ids(case)}: {problem}")
    assert wrong == [], "\n".join(wrong)


# -- REST ------------------------------------------------------------------------------


def _json_name(field_name: str) -> str:
    head, *rest = field_name.split("_")
    return head + "".join(part.title() for part in rest)


def rest_call(
    method: RpcMethod, request: Message, body_extra: dict[str, Any] | None = None
) -> tuple[str, str, bytes | None]:
    """(verb, path with query, body) of `request` by the route's `google.api.http` rule."""
    fields: dict[str, Any] = json_format.MessageToDict(request)
    path = method.http_path
    for name in method.path_params:
        value = str(fields.pop(_json_name(name), ""))
        path = re.sub(r"\{" + re.escape(name) + r"(=[^}]*)?\}", urllib.parse.quote(value, safe=""), path)
    if method.http_body == "*":
        return method.http_verb.upper(), path, json.dumps({**fields, **(body_extra or {})}).encode()
    query = urllib.parse.urlencode(fields, doseq=True)
    return method.http_verb.upper(), path + (f"?{query}" if query else ""), None


def _rest_problem(case: Case, role: str, response: Response, secrets: list[str]) -> str | None:
    leaked = [s for s in secrets if s.encode() in response.body]
    if leaked:
        return f"{response.status}: served B's data {leaked[:3]}"
    ok_statuses: tuple[int, ...] = {
        "denied": REST_DENIED,
        "list": (200,),
        "token": (*REST_DENIED, 400, 200),
        "noop": (*REST_DENIED, 200, 409),
    }[case.expect]
    if not _allowed_by_role(role, case.method):
        ok_statuses = (403,)  # the table refuses the role whatever the ids
    if response.status not in ok_statuses:
        return f"HTTP {response.status} {response.body[:120]!r}"
    if response.status >= 400:
        return _status_json_problem(response)
    return None


def _status_json_problem(response: Response) -> str | None:
    """An error through the gateway is google.rpc.Status JSON with the matching code."""
    codes = {400: 3, 403: 7, 404: 5, 409: 6}
    try:
        payload = json.loads(response.body)
    except ValueError:
        return f"HTTP {response.status} is not JSON: {response.body[:120]!r}"
    if (
        not isinstance(payload, dict)
        or payload.get("code") != codes[response.status]
        or "message" not in payload
    ):
        return f"HTTP {response.status} is not google.rpc.Status: {payload!r}"[:200]
    return None


@pytest.mark.parametrize("user,role", INTRUDERS, ids=[r for _, r in INTRUDERS])
def test_every_rest_route_on_b_resources_is_refused_through_the_gateway(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None, user: str, role: str
) -> None:
    bearer_token = token(user, role)
    wrong = []
    for case in _cases_for(role):
        if not case.method.http_verb:
            continue
        verb, path, body = rest_call(case.method, case.build(world))
        response = whole_mesh.request(verb, path, bearer_token, body, timeout_s=3)
        sent = path.encode() + (body or b"")
        problem = _rest_problem(case, role, response, world.secrets(urllib.parse.unquote_to_bytes(sent)))
        if problem:
            wrong.append(f"{verb} {path[:90]}: {problem}")
    assert wrong == [], "\n".join(wrong)


# -- ids in the body that differ from the path -------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """A route whose path names the caller's own resource (made by `own`) and whose
    body names B's (`foreign`) in the same field, and the other way round."""

    own: Callable[[grpc.Channel, tuple[tuple[str, str], ...]], Message]
    foreign: Callable[[World], str]
    noop: bool = False  # served as a no-op on a resource one has no part in (LeaveRoom)


def _own_room(channel: grpc.Channel, who: tuple[tuple[str, str], ...]) -> str:
    return _room(channel, who, cpb.ROOM_KIND_GROUP, [])


EVE = INTRUDERS[0][0]
BODY_VERSUS_PATH: dict[str, Mismatch] = {
    C + "JoinRoom": Mismatch(
        lambda ch, who: cpb.JoinRoomRequest(room_id=_own_room(ch, who)), lambda w: w.rooms["direct"]
    ),
    C + "LeaveRoom": Mismatch(
        lambda ch, who: cpb.LeaveRoomRequest(room_id=_own_room(ch, who)), lambda w: w.rooms["direct"], True
    ),
    C + "AddMember": Mismatch(
        lambda ch, who: cpb.AddMemberRequest(room_id=_own_room(ch, who), user_id=f"zed-{SUFFIX}"),
        lambda w: w.rooms["direct"],
    ),
    C + "SendMessage": Mismatch(
        lambda ch, who: cpb.SendMessageRequest(
            room_id=_own_room(ch, who),
            client_message_id=uuid.uuid4().hex,
            body="mine",
            channel=cpb.CHANNEL_CHAT,
            audience=cpb.Audience(kind=cpb.AUDIENCE_KIND_ROOM),
        ),
        lambda w: w.rooms["direct"],
    ),
    ORD + "CancelOrder": Mismatch(
        lambda ch, who: opb.CancelOrderRequest(order_id=_place(ch, who)), lambda w: w.orders[0]
    ),
    S + "Recharge": Mismatch(
        lambda ch, who: spb.RechargeRequest(
            session_id=_start(ch, who, PEER), seconds=60, request_id=uuid.uuid4().hex
        ),
        lambda w: w.sessions[0],
    ),
    S + "EndSession": Mismatch(
        lambda ch, who: spb.EndSessionRequest(session_id=_start(ch, who, PEER)), lambda w: w.sessions[0]
    ),
    R + "CancelJob": Mismatch(
        lambda ch, who: rpb.CancelJobRequest(job_id=_submit(ch, who)), lambda w: w.jobs[0]
    ),
    # Refused by role for a customer whatever the ids: the job is the caller's own.
    SA + "CancelJob": Mismatch(
        lambda ch, who: schpb.CancelJobRequest(job_id=_submit(ch, who)), lambda w: w.jobs[0]
    ),
    SA + "RetryJob": Mismatch(
        lambda ch, who: schpb.RetryJobRequest(job_id=_submit(ch, who)), lambda w: w.jobs[0]
    ),
}


@pytest.mark.parametrize("rpc", sorted(BODY_VERSUS_PATH), ids=lambda p: p.rsplit(".", 1)[-1])
def test_a_body_id_differing_from_the_path_never_reaches_b_resource(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None, rpc: str
) -> None:
    """Path = the caller's own resource, body = B's (and the other way round): the
    request is refused or acts on the path's resource only; B's data never changes and
    never comes back."""
    method = METHODS[rpc]
    eve_token = token(EVE, "customer")
    (id_field,) = method.path_params
    mismatch = BODY_VERSUS_PATH[rpc]
    with grpc.insecure_channel(whole_mesh.address) as channel:
        own = mismatch.own(channel, bearer(eve_token))
    own_id = getattr(own, id_field)
    foreign_id = mismatch.foreign(world)
    role_ok = _allowed_by_role("customer", method)
    wrong = []
    # The caller's own resource in the path, B's in the body.
    verb, path, body = rest_call(method, own, {_json_name(id_field): foreign_id})
    answer = whole_mesh.request(verb, path, eve_token, body)
    acted_on_b = answer.status == 200 and foreign_id.encode() in answer.body
    if acted_on_b or any(s.encode() in answer.body for s in world.secrets(foreign_id.encode())):
        wrong.append(f"own path, B's body: served B's resource: {answer.body[:200]!r}")
    elif answer.status not in ((200, 400) if role_ok else (403,)):
        wrong.append(f"own path, B's body: HTTP {answer.status} {answer.body[:120]!r}")
    # B's resource in the path, the caller's own in the body.
    foreign = type(own)()
    foreign.CopyFrom(own)
    setattr(foreign, id_field, foreign_id)
    verb, path, body = rest_call(method, foreign, {_json_name(id_field): own_id})
    answer = whole_mesh.request(verb, path, eve_token, body)
    refused = (*REST_DENIED, 400, *((200,) if mismatch.noop else ())) if role_ok else (403,)
    if any(s.encode() in answer.body for s in world.secrets(foreign_id.encode())):
        wrong.append(f"B's path, own body: served B's resource: {answer.body[:200]!r}")
    elif answer.status not in refused:
        wrong.append(f"B's path, own body: HTTP {answer.status} {answer.body[:120]!r}")
    elif answer.status >= 400 and (problem := _status_json_problem(answer)) is not None:
        wrong.append(f"B's path, own body: {problem}")
    assert wrong == [], "\n".join(wrong)


# -- live streams --------------------------------------------------------------------------


@dataclass
class Collector:
    """Reads a Subscribe stream on a thread until told to stop."""

    call: Any
    received: list[cpb.SubscribeResponse] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Collector:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        try:
            for item in self.call:
                self.received.append(item)
        except grpc.RpcError:
            pass

    def subscribed(self) -> set[str]:
        return {r.room_subscribed.room_id for r in self.received if r.HasField("room_subscribed")}

    def bodies(self) -> list[str]:
        return [r.message.body for r in self.received if r.HasField("message")]

    def stop(self) -> None:
        self.call.cancel()
        if self.thread is not None:
            self.thread.join(timeout=5)


def _subscribe(channel: grpc.Channel, who: tuple[tuple[str, str], ...]) -> Collector:
    stub = channel.unary_stream(
        C + "Subscribe", cpb.SubscribeRequest.SerializeToString, cpb.SubscribeResponse.FromString
    )
    return Collector(stub(cpb.SubscribeRequest(), metadata=who, timeout=60)).start()


def test_a_live_stream_of_one_user_never_delivers_another_users_messages(
    whole_mesh: Gateway, token: Callable[..., str], world: World
) -> None:
    owner, eve = bearer(token(OWNER, "customer")), bearer(token(EVE, "customer"))
    fresh = f"{MARK} live {uuid.uuid4().hex}"
    marker = f"eve's own {uuid.uuid4().hex}"
    with grpc.insecure_channel(whole_mesh.address) as channel:
        eve_room = _own_room(channel, eve)
        theirs, mine = _subscribe(channel, owner), _subscribe(channel, eve)
        try:
            # Both streams are live once each has subscribed its rooms.
            assert wait_until(lambda: set(world.rooms.values()) <= theirs.subscribed(), 10)
            assert wait_until(lambda: eve_room in mine.subscribed(), 10)
            for room in world.rooms.values():
                _send(channel, owner, room, fresh)
            assert wait_until(lambda: theirs.bodies().count(fresh) == len(world.rooms), 10), theirs.received
            _send(channel, eve, eve_room, marker)
            assert wait_until(lambda: marker in mine.bodies(), 10)
        finally:
            theirs.stop()
            mine.stop()
    foreign_rooms = set(world.rooms.values())
    leaked = [
        str(r)[:120]
        for r in mine.received
        if MARK in str(r)
        or {r.message.room_id, r.presence.room_id, r.room_subscribed.room_id} & foreign_rooms
    ]
    assert leaked == []


# -- squatting B's session room --------------------------------------------------------------


def test_a_session_room_made_up_by_another_user_never_gets_b_session_messages(
    whole_mesh: Gateway, token: Callable[..., str], world: World
) -> None:
    """A SESSION room that A creates naming B's session (refused, or made and ignored)
    never receives B's session's system messages: B's own session room does."""
    eve = bearer(token(EVE, "customer"))
    owner = bearer(token(OWNER, "customer"))
    with grpc.insecure_channel(whole_mesh.address) as channel:
        session = _start(channel, owner, PEER)  # its events have not reached chat yet, or just have
        request = cpb.CreateRoomRequest(
            kind=cpb.ROOM_KIND_SESSION,
            display_name="squat",
            member_ids=[PEER],
            session_id=session,
            request_id=uuid.uuid4().hex,
        )
        try:
            squat = str(_unary(channel, C + "CreateRoom", request, eve).room.id)
        except grpc.RpcError as error:
            # refused, or chat_svc made the session's own room first
            assert isinstance(error, grpc.Call) and error.code() in (*DENIED, grpc.StatusCode.ALREADY_EXISTS)
            squat = ""
        real = _session_room(channel, owner, session)
        assert real != squat
        _unary(channel, S + "EndSession", spb.EndSessionRequest(session_id=session), owner)

        def ended_in_real_room() -> bool:
            listed = _unary(channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=real), owner)
            return any(m.system_event_type == "session.ended.v1" for m in listed.messages)

        assert wait_until(ended_in_real_room, 20, 0.2)
        if squat:
            listed = _unary(channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=squat), eve)
            assert [m.system_event_type for m in listed.messages if m.system_event_type] == []


def test_a_session_room_claimed_first_by_another_user_never_gets_the_session_messages(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """Deterministic form of the race above: A's SESSION room names the session before
    chat_svc hears of it. The session's own room (the id session_svc assigned, B and the
    advisor as members) is still made and gets the notice; A's room gets nothing."""
    eve, owner = bearer(token(EVE, "customer")), bearer(token(OWNER, "customer"))
    session, room = str(uuid.uuid4()), str(uuid.uuid4())
    with grpc.insecure_channel(whole_mesh.address) as channel:
        request = cpb.CreateRoomRequest(
            kind=cpb.ROOM_KIND_SESSION,
            display_name="squat",
            member_ids=[PEER],
            session_id=session,
            request_id=uuid.uuid4().hex,
        )
        try:
            squat = str(_unary(channel, C + "CreateRoom", request, eve).room.id)
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call) and error.code() in DENIED
            squat = ""
        started = se.SessionStarted(session_id=session, customer_id=OWNER, advisor_id=PEER, room_id=room)
        exchange = whole_mesh.services["session"].env["EVENTS_EXCHANGE"]
        publisher = Publisher(
            MeshConfig(rabbitmq_url=RABBITMQ_URL, events_exchange=exchange), "xuser"
        ).start()
        try:
            assert publisher.wait_ready(10)
            publisher.publish(
                new_event("session.started.v1", "session", f"sessions/{session}", started)
            ).result(10)
        finally:
            publisher.close()

        def noticed() -> bool:
            found = _code_of(lambda: _unary(channel, C + "GetRoom", cpb.GetRoomRequest(room_id=room), owner))
            if found != grpc.StatusCode.OK:
                return False
            listed = _unary(channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=room), owner)
            return [m.system_event_type for m in listed.messages] == ["session.started.v1"]

        assert wait_until(noticed, 20, 0.2), "the session's own room never got its notice"
        if squat:
            listed = _unary(channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=squat), eve)
            assert [m.system_event_type for m in listed.messages if m.system_event_type] == []


# -- members who are not owners, and owners of rooms that are not only theirs ---------------


def _code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def test_a_member_who_is_not_the_owner_cannot_change_the_members(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None
) -> None:
    """B's peer is in B's GROUP and DIRECT rooms but owns neither."""
    peer = bearer(token(PEER, "advisor"))
    wrong = []
    with grpc.insecure_channel(whole_mesh.address) as channel:
        for kind in ("group", "direct"):
            room = world.rooms[kind]
            tries = {
                "add": (C + "AddMember", cpb.AddMemberRequest(room_id=room, user_id=f"zed-{SUFFIX}")),
                "remove B": (C + "RemoveMember", cpb.RemoveMemberRequest(room_id=room, user_id=OWNER)),
            }
            for name, (path, request) in tries.items():
                code = _code_of(lambda p=path, r=request: _unary(channel, p, r, peer))  # type: ignore[misc]
                if code not in DENIED:
                    wrong.append(f"{kind} {name}: {code.name}")
    assert wrong == []


def test_a_session_room_keeps_exactly_the_session_participants(
    whole_mesh: Gateway, token: Callable[..., str], world: World, unchanged: None
) -> None:
    """The advisor owns the SESSION room chat_svc made for B's session, but the room is
    B's paid conversation too: nobody is added to it (a third party would read B's
    history) and B is not removed from it."""
    peer = bearer(token(PEER, "advisor"))
    room = world.rooms["session"]
    with grpc.insecure_channel(whole_mesh.address) as channel:
        added = _code_of(
            lambda: _unary(channel, C + "AddMember", cpb.AddMemberRequest(room_id=room, user_id=EVE), peer)
        )
        removed = _code_of(
            lambda: _unary(
                channel, C + "RemoveMember", cpb.RemoveMemberRequest(room_id=room, user_id=OWNER), peer
            )
        )
    refused = (*DENIED, grpc.StatusCode.FAILED_PRECONDITION)
    assert (added in refused, removed in refused) == (True, True), (added.name, removed.name)


def test_joining_a_group_shows_only_what_was_addressed_to_everyone(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """A GROUP room anybody may join (the contract); a newcomer reads its room-wide
    history, never what was sent to one member, in the history and in a replay."""
    owner, eve = bearer(token(OWNER, "customer")), bearer(token(EVE, "customer"))
    private, public = f"{MARK} only for carol {uuid.uuid4().hex}", f"for all {uuid.uuid4().hex}"
    with grpc.insecure_channel(whole_mesh.address) as channel:
        room = _room(channel, owner, cpb.ROOM_KIND_GROUP, [PEER])
        _send(channel, owner, room, private, to=PEER)
        _send(channel, owner, room, public)
        _unary(channel, C + "JoinRoom", cpb.JoinRoomRequest(room_id=room), eve)
        listed = _unary(channel, C + "ListMessages", cpb.ListMessagesRequest(room_id=room), eve)
        replay = _subscribe_from(channel, eve, room)
        try:
            assert wait_until(lambda: room in replay.subscribed(), 10)
        finally:
            replay.stop()
    assert [m.body for m in listed.messages] == [public]
    assert replay.bodies() == [public]


def _subscribe_from(channel: grpc.Channel, who: tuple[tuple[str, str], ...], room: str) -> Collector:
    """Subscribe to `room` from its first message (the replay comes before RoomSubscribed)."""
    stub = channel.unary_stream(
        C + "Subscribe", cpb.SubscribeRequest.SerializeToString, cpb.SubscribeResponse.FromString
    )
    request = cpb.SubscribeRequest(
        room_ids=[room], positions=[cpb.RoomPosition(room_id=room, after_sequence=0)]
    )
    return Collector(stub(request, metadata=who, timeout=60)).start()


@pytest.mark.parametrize("kind", KINDS)
def test_subscribe_by_query_string_refuses_b_rooms(
    whole_mesh: Gateway, token: Callable[..., str], world: World, kind: str
) -> None:
    """The GET binding of Subscribe (additional_bindings, not in rest_methods): B's room
    by id is refused like in the POST body (positions, a repeated message, cannot be
    put in a query string: the gateway refuses them as unknown parameters)."""
    room = world.rooms[kind]
    answer = whole_mesh.request(
        "GET", f"/v1/rooms:subscribe?roomIds={room}", token(EVE, "customer"), timeout_s=3
    )
    assert answer.status in REST_DENIED, (answer.status, answer.body[:200])
    assert _status_json_problem(answer) is None
    assert MARK.encode() not in answer.body
