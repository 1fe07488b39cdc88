"""kill -9 of one order_svc replica while clients place orders, chat and run a
session timer through the gateway: the clients retry UNAVAILABLE with the same
idempotency key and lose nothing — every accepted order exists exactly once, every
chat message arrives, the session's timer fires."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import grpc
import pytest
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc as ogrpc
from switchboard.session.v1 import session_service_pb2 as spb
from switchboard.session.v1 import session_service_pb2_grpc as sgrpc
from switchboard.type.v1 import money_pb2

from chat_svc.client import ChatClient, Follower
from mesh.client import bearer
from mesh.processes import wait_until
from tests.chaos.conftest import Load, Mesh, Tally, retrying

pytestmark = pytest.mark.chaos


def order_request(key: str) -> opb.PlaceOrderRequest:
    price = money_pb2.Money(currency_code="EUR", amount_minor=250)
    return opb.PlaceOrderRequest(
        lines=[opb.LineItem(sku="sku-1", quantity=2, unit_price=price)], idempotency_key=key
    )


def all_orders(stub: ogrpc.OrderServiceStub, metadata: tuple[tuple[str, str], ...]) -> list[opb.Order]:
    orders: list[opb.Order] = []
    token = ""
    while True:
        page = stub.ListOrders(
            opb.ListOrdersRequest(page_size=100, page_token=token), metadata=metadata, timeout=10
        )
        orders += page.orders
        token = page.next_page_token
        if not token:
            return orders


def test_killed_order_replica_loses_no_order_message_or_timer(
    mesh: Mesh, token: Callable[..., str], record_property: Callable[[str, object], None]
) -> None:
    alice_token = token("alice", "customer")
    alice = bearer(alice_token)
    orders = ogrpc.OrderServiceStub(mesh.channel())
    sessions = sgrpc.SessionServiceStub(mesh.channel())
    chat = ChatClient(mesh.target, alice_token)
    room = chat.create_group("chaos", ["bob"])
    bob = Follower(targets=[mesh.target], token=token("bob", "customer"), room_ids=[room.id]).start()
    assert bob.wait_subscribed(15)
    session = sessions.StartSession(
        spb.StartSessionRequest(advisor_id="bob", prepaid_seconds=3, request_id=uuid.uuid4().hex),
        metadata=alice,
        timeout=10,
    ).session

    accepted: dict[str, str] = {}  # idempotency key -> order id
    sent: list[str] = []
    tally = Tally()

    def place(i: int) -> None:
        key = f"k-{i}-{uuid.uuid4().hex[:6]}"
        response = retrying(lambda: orders.PlaceOrder(order_request(key), metadata=alice, timeout=5), tally)
        accepted[key] = response.order.id  # type: ignore[attr-defined]
        if i % 3 == 0:
            body = f"m-{i}"
            retrying(lambda: chat.send(room.id, body, client_message_id=body), tally)
            sent.append(body)

    load = Load(place, threads=4)
    began = time.monotonic()
    with load:
        assert wait_until(lambda: load.tally.accepted >= 20, 30, 0.05)
        mesh.order_replicas[0].kill()
        killed_at = time.monotonic()
        kill_count = load.tally.accepted
        assert wait_until(lambda: load.tally.accepted >= kill_count + 40, 60, 0.05)
    recovery_s = time.monotonic() - killed_at
    mesh.order_replicas[0].start()

    # Nothing failed for the client beyond retried UNAVAILABLE.
    assert load.tally.errors == {}, load.tally.errors
    assert load.tally.accepted == load.tally.requests
    # Every accepted order exists exactly once (a retried key did not make a second one).
    stored = all_orders(orders, alice)
    assert sorted(o.idempotency_key for o in stored) == sorted(accepted)
    assert {o.id for o in stored} == set(accepted.values())
    # Every chat message reached bob.
    assert wait_until(lambda: sorted(bob.bodies()) == sorted(sent), 15), (len(bob.bodies()), len(sent))
    bob.stop()
    # The session's paid-time timer fired although the mesh was under load and a replica died.
    assert wait_until(
        lambda: (
            sessions.GetSession(
                spb.GetSessionRequest(session_id=session.id), metadata=alice, timeout=5
            ).session.state
            == spb.SESSION_STATE_PAUSED_FOR_RECHARGE
        ),
        15,
        0.2,
    )
    for name, value in {
        "requests": load.tally.requests,
        "accepted": load.tally.accepted,
        "lost": load.tally.requests - len(accepted),
        "retried": tally.retried,
        "messages": len(sent),
        "recovery_s": round(recovery_s, 2),
        "duration_s": round(time.monotonic() - began, 1),
    }.items():
        record_property(name, value)
    print("replica-kill", dict(tally.errors), "retried", tally.retried, "accepted", len(accepted))


def test_order_reads_survive_replica_kill_via_gateway_retry(
    mesh: Mesh, token: Callable[..., str], record_property: Callable[[str, object], None]
) -> None:
    """Reads are retried by Envoy itself: a client sees no error at all."""
    alice = bearer(token("alice", "customer"))
    orders = ogrpc.OrderServiceStub(mesh.channel())
    placed = orders.PlaceOrder(order_request(uuid.uuid4().hex), metadata=alice, timeout=10).order
    failures: list[grpc.StatusCode] = []

    def read(_: int) -> None:
        orders.GetOrder(opb.GetOrderRequest(order_id=placed.id), metadata=alice, timeout=5)

    load = Load(read, threads=3)
    with load:
        assert wait_until(lambda: load.tally.accepted >= 20, 20, 0.05)
        mesh.order_replicas[1].kill()
        count = load.tally.accepted
        assert wait_until(lambda: load.tally.accepted >= count + 60, 30, 0.05)
    failures = [grpc.StatusCode[name] for name in load.tally.errors]
    # Only UNAVAILABLE may leak (a request in flight on the killed connection); never a wrong answer.
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE}
    record_property("requests", load.tally.requests)
    record_property("errors", sum(load.tally.errors.values()))
    assert load.tally.errors == {}


def test_session_timer_due_while_session_svc_is_dead_fires_after_restart(
    mesh: Mesh, token: Callable[..., str], record_property: Callable[[str, object], None]
) -> None:
    alice = bearer(token("alice", "customer"))
    sessions = sgrpc.SessionServiceStub(mesh.channel())
    session = sessions.StartSession(
        spb.StartSessionRequest(advisor_id="bob", prepaid_seconds=2, request_id=uuid.uuid4().hex),
        metadata=alice,
        timeout=10,
    ).session
    session_svc = mesh.services["session"]
    session_svc.kill()
    time.sleep(3)  # the pause timer comes due while no replica runs
    session_svc.start()
    restarted = time.monotonic()

    def state() -> int:
        request = spb.GetSessionRequest(session_id=session.id)
        try:
            return sessions.GetSession(request, metadata=alice, timeout=5).session.state
        except grpc.RpcError as error:  # until Envoy's health check sees the new process
            assert isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.UNAVAILABLE
            return -1

    assert wait_until(lambda: state() == spb.SESSION_STATE_PAUSED_FOR_RECHARGE, 15, 0.1)
    record_property("timer_late_after_restart_s", round(time.monotonic() - restarted, 2))
