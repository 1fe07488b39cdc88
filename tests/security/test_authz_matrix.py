"""The authorisation matrix on the running mesh. Authentication: every RPC, through
the gateway and straight at its service, refuses no token, an expired token, a
token signed by another key and a malformed one with UNAUTHENTICATED (REST: 401).
Ownership: another user's order, room, session and job ids give PERMISSION_DENIED
or NOT_FOUND on every RPC that names them, while the owner and an admin are served.
(Which role may call which RPC is checked live by tests/unit/test_authorization_table.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import message as pb_message
from switchboard.chat.v1 import chat_service_pb2 as cpb
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.registration.v1 import registration_service_pb2 as rpb
from switchboard.session.v1 import session_service_pb2 as spb
from switchboard.type.v1 import money_pb2

from mesh.client import bearer
from mesh.openapi import RpcMethod, rest_methods, rpc_methods
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway

GATEWAY_SERVICES = {svc for spec in SERVICES for svc in spec.grpc_services}
DENIED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)


def _code(
    channel: grpc.Channel, path: str, request: bytes, metadata: tuple[tuple[str, str], ...], streaming: bool
) -> grpc.StatusCode:
    """The status an RPC answers with (OK when it was served)."""
    try:
        if streaming:
            call = channel.unary_stream(path, None, None)(request, metadata=metadata, timeout=5)
            try:
                next(iter(call), None)
            finally:
                call.cancel()
        else:
            channel.unary_unary(path, None, None)(request, metadata=metadata, timeout=5)
    except grpc.RpcError as error:
        return error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def _credentials(expired_token: str, foreign_token: str) -> dict[str, tuple[tuple[str, str], ...]]:
    return {
        "no token": (),
        "expired": bearer(expired_token),
        "foreign key": bearer(foreign_token),
        "malformed": (("authorization", "Bearer not.a.jwt"),),
        "not bearer": (("authorization", "Basic YWRtaW46YWRtaW4="),),
    }


def test_every_rpc_through_the_gateway_refuses_bad_credentials_as_unauthenticated(
    whole_mesh: Gateway, expired_token: str, foreign_token: str
) -> None:
    methods = [m for m in rpc_methods() if m.service in GATEWAY_SERVICES]
    credentials = _credentials(expired_token, foreign_token)
    cases = [(m, name) for m in methods for name in credentials]
    with grpc.insecure_channel(whole_mesh.address) as channel, ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda c: _code(channel, c[0].grpc_path, b"", credentials[c[1]], c[0].server_streaming), cases
            )
        )
    wrong = [
        f"{m.grpc_path} with {name}: {code.name}"
        for (m, name), code in zip(cases, codes, strict=True)
        if code != grpc.StatusCode.UNAUTHENTICATED
    ]
    assert wrong == []


def test_every_service_refuses_bad_credentials_itself_behind_the_gateway(
    whole_mesh: Gateway, expired_token: str, foreign_token: str
) -> None:
    """Defence in depth: a caller inside the network that bypasses Envoy is refused too."""
    credentials = _credentials(expired_token, foreign_token)
    wrong = []
    for spec in SERVICES:
        process = whole_mesh.services[spec.name]
        methods = [m for m in rpc_methods() if m.service in spec.grpc_services]
        with grpc.insecure_channel(process.target) as channel:
            for method in methods:
                for name, metadata in credentials.items():
                    code = _code(channel, method.grpc_path, b"", metadata, method.server_streaming)
                    if code != grpc.StatusCode.UNAUTHENTICATED:
                        wrong.append(f"{spec.name} {method.grpc_path} with {name}: {code.name}")
    assert wrong == []


@pytest.mark.parametrize("method", rest_methods(), ids=lambda m: f"{m.http_verb} {m.http_path}")
def test_rest_routes_answer_401_without_a_valid_token(
    whole_mesh: Gateway, expired_token: str, foreign_token: str, method: RpcMethod
) -> None:
    path = method.http_path
    for name in method.path_params:
        path = path.replace("{" + name + "}", "x")
    body = b"{}" if method.http_body else None
    for token in (None, expired_token, foreign_token, "not.a.jwt"):
        assert whole_mesh.request(method.http_verb.upper(), path, token, body).status == 401


def _resources_of_alice(channel: grpc.Channel, alice: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """An order, a direct room (with dave), a session and a job that belong to alice."""
    price = money_pb2.Money(currency_code="EUR", amount_minor=100)
    order = channel.unary_unary(
        "/switchboard.order.v1.OrderService/PlaceOrder",
        opb.PlaceOrderRequest.SerializeToString,
        opb.PlaceOrderResponse.FromString,
    )(
        opb.PlaceOrderRequest(
            lines=[opb.LineItem(sku="s", quantity=1, unit_price=price)], idempotency_key=uuid.uuid4().hex
        ),
        metadata=alice,
        timeout=10,
    ).order
    room = channel.unary_unary(
        "/switchboard.chat.v1.ChatService/CreateRoom",
        cpb.CreateRoomRequest.SerializeToString,
        cpb.CreateRoomResponse.FromString,
    )(
        cpb.CreateRoomRequest(
            kind=cpb.ROOM_KIND_DIRECT,
            display_name="private",
            member_ids=["dave"],
            request_id=uuid.uuid4().hex,
        ),
        metadata=alice,
        timeout=10,
    ).room
    session = channel.unary_unary(
        "/switchboard.session.v1.SessionService/StartSession",
        spb.StartSessionRequest.SerializeToString,
        spb.StartSessionResponse.FromString,
    )(
        spb.StartSessionRequest(advisor_id="dave", prepaid_seconds=600, request_id=uuid.uuid4().hex),
        metadata=alice,
        timeout=10,
    ).session
    job = channel.unary_unary(
        "/switchboard.registration.v1.RegistrationService/SubmitJob",
        rpb.SubmitJobRequest.SerializeToString,
        rpb.SubmitJobResponse.FromString,
    )(
        rpb.SubmitJobRequest(definition="noop", idempotency_key=uuid.uuid4().hex), metadata=alice, timeout=10
    ).job
    return {"order": order.id, "room": room.id, "session": session.id, "job": job.id}


def _foreign_calls(ids: dict[str, str]) -> list[tuple[str, pb_message.Message, bool]]:
    """Every RPC that names one of alice's resources, with its request."""
    order, room, session, job = ids["order"], ids["room"], ids["session"], ids["job"]
    o, c, s, r = (
        "/switchboard.order.v1.OrderService/",
        "/switchboard.chat.v1.ChatService/",
        "/switchboard.session.v1.SessionService/",
        "/switchboard.registration.v1.RegistrationService/",
    )
    return [
        (o + "GetOrder", opb.GetOrderRequest(order_id=order), False),
        (o + "CancelOrder", opb.CancelOrderRequest(order_id=order), False),
        (c + "GetRoom", cpb.GetRoomRequest(room_id=room), False),
        (c + "JoinRoom", cpb.JoinRoomRequest(room_id=room), False),
        (c + "AddMember", cpb.AddMemberRequest(room_id=room, user_id="bob"), False),
        (c + "RemoveMember", cpb.RemoveMemberRequest(room_id=room, user_id="dave"), False),
        (
            c + "SendMessage",
            cpb.SendMessageRequest(
                room_id=room,
                client_message_id="x",
                body="hi",
                channel=cpb.CHANNEL_CHAT,
                audience=cpb.Audience(kind=cpb.AUDIENCE_KIND_ROOM),
            ),
            False,
        ),
        (c + "ListMessages", cpb.ListMessagesRequest(room_id=room), False),
        (c + "ListPresence", cpb.ListPresenceRequest(room_id=room), False),
        (c + "Subscribe", cpb.SubscribeRequest(room_ids=[room]), True),
        (s + "GetSession", spb.GetSessionRequest(session_id=session), False),
        (s + "Recharge", spb.RechargeRequest(session_id=session, seconds=60, request_id="x"), False),
        (s + "EndSession", spb.EndSessionRequest(session_id=session), False),
        (s + "WatchSession", spb.WatchSessionRequest(session_id=session), True),
        (r + "GetJob", rpb.GetJobRequest(job_id=job), False),
        (r + "CancelJob", rpb.CancelJobRequest(job_id=job), False),
        (r + "WatchJob", rpb.WatchJobRequest(job_id=job), True),
    ]


def test_other_users_resource_ids_are_refused_for_every_role_but_admin(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    with grpc.insecure_channel(whole_mesh.address) as channel:
        ids = _resources_of_alice(channel, bearer(token("alice", "customer")))
        calls = _foreign_calls(ids)
        wrong = []
        for user, role in (("bob", "customer"), ("erin", "advisor")):
            metadata = bearer(token(user, role))
            for path, request, streaming in calls:
                code = _code(channel, path, request.SerializeToString(), metadata, streaming)
                # A role the table refuses is a denial too (PERMISSION_DENIED).
                if code not in DENIED:
                    wrong.append(f"{user}/{role} {path}: {code.name}")
        assert wrong == [], "\n".join(wrong)
        # A customer's filter naming another customer is refused (the contract).
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(
                "/switchboard.order.v1.OrderService/ListOrders",
                opb.ListOrdersRequest.SerializeToString,
                opb.ListOrdersResponse.FromString,
            )(
                opb.ListOrdersRequest(customer_id="alice"),
                metadata=bearer(token("bob", "customer")),
                timeout=10,
            )
        assert isinstance(refused.value, grpc.Call)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # The owner and an admin are served on the reads.
        reads = [
            c for c in calls if c[0].rsplit("/", 1)[1] in {"GetOrder", "GetRoom", "GetSession", "GetJob"}
        ]
        for who in (bearer(token("alice", "customer")), bearer(token("root", "admin"))):
            for path, request, streaming in reads:
                assert (
                    _code(channel, path, request.SerializeToString(), who, streaming) == grpc.StatusCode.OK
                ), path
