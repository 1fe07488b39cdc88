"""EventAdminService on every service, real processes: reflection lists it, every
RPC answers an operator or an admin, refuses a customer (PERMISSION_DENIED) and a
caller without a token (UNAUTHENTICATED), and each service serves the dead
letters of every queue it consumes, plus its outbox rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from switchboard.admin.v1 import event_admin_pb2 as pb
from switchboard.admin.v1 import event_admin_pb2_grpc
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from mesh.admin import SERVICE_NAME
from mesh.client import bearer
from mesh.topology import SERVICES, ServiceSpec
from tests.integration.test_foundation import reflected_services
from tests.support.processes import ServiceProcess

# The queues each service consumes (after QUEUE_PREFIX): their dead letters must be
# served. A service added to mesh.topology without an entry here fails the test below.
CONSUMED_QUEUES: dict[str, tuple[str, ...]] = {
    "chat": ("chat.session-events",),
    "session": (),
    "registration": ("registration.job-status",),
    "scheduler": ("scheduler.job-registered", "scheduler.job-cancel", "scheduler.work"),
    "order": (),
    "activity": ("activity",),
}
LEAN = {"BUS_RETRY_DELAYS_MS": "[200]"}


@pytest.fixture
def admin_stub(
    request: pytest.FixtureRequest, start_service: Callable[..., ServiceProcess]
) -> Iterator[tuple[ServiceProcess, event_admin_pb2_grpc.EventAdminServiceStub]]:
    spec: ServiceSpec = request.param
    process = start_service(spec.module, **LEAN)
    with grpc.insecure_channel(process.target) as channel:
        yield process, event_admin_pb2_grpc.EventAdminServiceStub(channel)


def every_rpc(
    stub: event_admin_pb2_grpc.EventAdminServiceStub, queue: str
) -> dict[str, Callable[[Any], object]]:
    """Each RPC with a well-formed request; `queue` is a consumer queue of the service
    (or, for a service without one, any name: NOT_FOUND is then the right answer)."""
    return {
        "ListOutboxMessages": lambda md: stub.ListOutboxMessages(
            pb.ListOutboxMessagesRequest(status=pb.OUTBOX_STATUS_FAILED), metadata=md, timeout=10
        ),
        "ReplayOutboxMessages": lambda md: stub.ReplayOutboxMessages(
            pb.ReplayOutboxMessagesRequest(all_failed=True), metadata=md, timeout=10
        ),
        "ListDeadLetters": lambda md: stub.ListDeadLetters(
            pb.ListDeadLettersRequest(max_count=10), metadata=md, timeout=10
        ),
        "ReplayDeadLetters": lambda md: stub.ReplayDeadLetters(
            pb.ReplayDeadLettersRequest(queue=queue, max_count=1), metadata=md, timeout=10
        ),
    }


def code_of(call: Callable[[Any], object], metadata: Any) -> grpc.StatusCode:
    try:
        call(metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_service_of_the_topology_declares_its_consumed_queues() -> None:
    assert set(CONSUMED_QUEUES) == {spec.name for spec in SERVICES}


@pytest.mark.parametrize("admin_stub", SERVICES, ids=lambda s: s.name, indirect=True)
def test_every_service_serves_event_admin_to_operators_only(
    admin_stub: tuple[ServiceProcess, event_admin_pb2_grpc.EventAdminServiceStub],
    token: Callable[..., str],
    isolation: dict[str, str],
) -> None:
    process, stub = admin_stub
    name = process.module.removesuffix("_svc")
    queues = CONSUMED_QUEUES[name]
    assert SERVICE_NAME in reflected_services(process.target)
    rpcs = every_rpc(stub, isolation["QUEUE_PREFIX"] + (queues[0] if queues else "none"))
    served = grpc.StatusCode.OK if queues else grpc.StatusCode.NOT_FOUND
    for role in ("operator", "admin"):
        answers = {rpc: code_of(call, bearer(token("ops", role))) for rpc, call in rpcs.items()}
        assert answers == {
            "ListOutboxMessages": grpc.StatusCode.OK,
            "ReplayOutboxMessages": grpc.StatusCode.OK,
            "ListDeadLetters": grpc.StatusCode.OK,
            "ReplayDeadLetters": served,
        }, role
    for role in ("customer", "advisor"):
        answers = {rpc: code_of(call, bearer(token("mallory", role))) for rpc, call in rpcs.items()}
        assert set(answers.values()) == {grpc.StatusCode.PERMISSION_DENIED}, role
    assert {code_of(call, ()) for call in rpcs.values()} == {grpc.StatusCode.UNAUTHENTICATED}


@pytest.mark.parametrize(
    "admin_stub", [s for s in SERVICES if CONSUMED_QUEUES[s.name]], ids=lambda s: s.name, indirect=True
)
def test_every_consumed_queue_has_its_dead_letters_served(
    admin_stub: tuple[ServiceProcess, event_admin_pb2_grpc.EventAdminServiceStub],
    token: Callable[..., str],
    isolation: dict[str, str],
) -> None:
    process, stub = admin_stub
    operator = bearer(token("ops", "operator"))
    for queue in CONSUMED_QUEUES[process.module.removesuffix("_svc")]:
        full = isolation["QUEUE_PREFIX"] + queue
        listed = stub.ListDeadLetters(pb.ListDeadLettersRequest(queue=full), metadata=operator, timeout=10)
        assert list(listed.dead_letters) == []
        replayed = stub.ReplayDeadLetters(
            pb.ReplayDeadLettersRequest(queue=full), metadata=operator, timeout=10
        )
        assert replayed.replayed_count == 0
    with pytest.raises(grpc.RpcError) as unknown:
        stub.ListDeadLetters(pb.ListDeadLettersRequest(queue="not-ours"), metadata=operator, timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_order_svc_admin_lists_the_outbox_row_of_a_placed_order(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    process = start_service("order_svc")
    with grpc.insecure_channel(process.target) as channel:
        orders = order_service_pb2_grpc.OrderServiceStub(channel)
        line = opb.LineItem(sku="SKU-1", quantity=1, unit_price=Money(currency_code="EUR", amount_minor=100))
        placed = orders.PlaceOrder(
            opb.PlaceOrderRequest(lines=[line], idempotency_key="k1"),
            metadata=bearer(token("alice", "customer")),
            timeout=10,
        ).order
        admin = event_admin_pb2_grpc.EventAdminServiceStub(channel)
        rows = admin.ListOutboxMessages(
            pb.ListOutboxMessagesRequest(), metadata=bearer(token("ops", "operator")), timeout=10
        ).outbox_messages
    assert [row.event_type for row in rows] == ["order.created.v1"]
    assert placed.id in rows[0].subject
