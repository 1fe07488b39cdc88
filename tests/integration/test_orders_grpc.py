"""order_svc through gRPC against a real process, MongoDB and RabbitMQ:
placement, idempotency, ownership, paging, cancellation and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.order.v1 import order_service_pb2 as pb
from switchboard.order.v1 import order_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from mesh.client import bearer
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique

Stub = order_service_pb2_grpc.OrderServiceStub


def line(sku: str = "SKU-1", quantity: int = 1, amount: int = 1000, currency: str = "EUR") -> pb.LineItem:
    return pb.LineItem(
        sku=sku, quantity=quantity, unit_price=Money(currency_code=currency, amount_minor=amount)
    )


def violated_fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields.extend(v.field for v in bad_request.field_violations)
    return fields


@pytest.fixture(scope="module")
def order_svc(
    mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One order_svc for the module (starting a process per test would dominate the
    run time); tests stay independent by using their own customer names."""
    tag = unique("orders")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
    }
    process = ServiceProcess("order_svc", env, tmp_path_factory.mktemp("logs")).start()
    yield process
    process.stop()


@pytest.fixture
def stub(order_svc: ServiceProcess) -> Iterator[Stub]:
    with grpc.insecure_channel(order_svc.target) as channel:
        yield Stub(channel)


@pytest.fixture
def who() -> Callable[[str], str]:
    """`who("alice")`: a user name of this test only."""
    suffix = unique("u")
    return lambda name: f"{name}-{suffix}"


def test_place_order_computes_line_totals_and_total(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    request = pb.PlaceOrderRequest(lines=[line("A", 2, 1999), line("B", 3, 500)], idempotency_key="k-1")
    order = stub.PlaceOrder(request, metadata=bearer(token(who("alice"), "customer")), timeout=10).order
    assert order.customer_id == who("alice")
    assert order.status == pb.ORDER_STATUS_PLACED
    assert [x.line_total.amount_minor for x in order.lines] == [3998, 1500]
    assert order.total == Money(currency_code="EUR", amount_minor=5498)
    assert order.currency_code == "EUR"
    assert order.create_time.seconds > 0


def test_repeated_idempotency_key_returns_the_first_order(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("alice"), "customer"))
    first = stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key="same"), metadata=auth).order
    again = stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key="same"), metadata=auth).order
    assert again.id == first.id


def test_repeated_key_with_other_lines_answers_the_first_order_unchanged(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("alice"), "customer"))
    original = pb.PlaceOrderRequest(lines=[line("A", 1)], idempotency_key="k")
    first = stub.PlaceOrder(original, metadata=auth).order
    retry = pb.PlaceOrderRequest(lines=[line("B", 5, currency="USD")], idempotency_key="k")
    assert stub.PlaceOrder(retry, metadata=auth).order == first
    assert [o.id for o in stub.ListOrders(pb.ListOrdersRequest(), metadata=auth).orders] == [first.id]


def test_same_key_of_two_customers_makes_two_orders(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    request = pb.PlaceOrderRequest(lines=[line()], idempotency_key="shared")
    alice = stub.PlaceOrder(request, metadata=bearer(token(who("alice"), "customer"))).order
    bob = stub.PlaceOrder(request, metadata=bearer(token(who("bob"), "customer"))).order
    assert alice.id != bob.id


def test_concurrent_place_order_with_one_key_creates_one_order(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("carol"), "customer"))
    request = pb.PlaceOrderRequest(lines=[line()], idempotency_key="race")
    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(lambda _: stub.PlaceOrder(request, metadata=auth, timeout=20).order.id, range(16)))
    assert len(ids) == 1
    listed = stub.ListOrders(pb.ListOrdersRequest(), metadata=auth).orders
    assert [o.id for o in listed] == list(ids)


def test_customer_cannot_read_or_cancel_another_customers_order(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    order = stub.PlaceOrder(
        pb.PlaceOrderRequest(lines=[line()], idempotency_key="mine"),
        metadata=bearer(token(who("alice"), "customer")),
    ).order
    mallory = bearer(token(who("mallory"), "customer"))
    with pytest.raises(grpc.RpcError) as read:
        stub.GetOrder(pb.GetOrderRequest(order_id=order.id), metadata=mallory)
    assert read.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as cancel:
        stub.CancelOrder(pb.CancelOrderRequest(order_id=order.id), metadata=mallory)
    assert cancel.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.ListOrders(pb.ListOrdersRequest(), metadata=mallory).orders == []


def test_admin_reads_any_order_and_filters_by_customer(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    order = stub.PlaceOrder(
        pb.PlaceOrderRequest(lines=[line()], idempotency_key="a"),
        metadata=bearer(token(who("alice"), "customer")),
    ).order
    stub.PlaceOrder(
        pb.PlaceOrderRequest(lines=[line()], idempotency_key="b"),
        metadata=bearer(token(who("bob"), "customer")),
    )
    admin = bearer(token(who("root"), "admin"))
    assert stub.GetOrder(pb.GetOrderRequest(order_id=order.id), metadata=admin).order.id == order.id
    everyone = {
        o.customer_id for o in stub.ListOrders(pb.ListOrdersRequest(page_size=1000), metadata=admin).orders
    }
    assert {who("alice"), who("bob")} <= everyone
    only_alice = stub.ListOrders(pb.ListOrdersRequest(customer_id=who("alice")), metadata=admin).orders
    assert [o.id for o in only_alice] == [order.id]


def test_advisor_role_may_not_place_orders(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.PlaceOrder(
            pb.PlaceOrderRequest(lines=[line()], idempotency_key="x"),
            metadata=bearer(token(who("ann"), "advisor")),
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_cancel_moves_placed_to_cancelled_and_is_idempotent(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("alice"), "customer"))
    order = stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key="c"), metadata=auth).order
    cancelled = stub.CancelOrder(
        pb.CancelOrderRequest(order_id=order.id, reason="changed mind"), metadata=auth
    )
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELLED
    assert cancelled.order.HasField("cancel_time")
    again = stub.CancelOrder(pb.CancelOrderRequest(order_id=order.id), metadata=auth)
    assert again.order == cancelled.order


def test_unknown_order_is_not_found(stub: Stub, token: Callable[..., str], who: Callable[[str], str]) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetOrder(
            pb.GetOrderRequest(order_id="no-such-order"), metadata=bearer(token(who("root"), "admin"))
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_orders_pages_newest_first_with_status_filter(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("dave"), "customer"))
    placed = [
        stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key=f"p{i}"), metadata=auth).order
        for i in range(5)
    ]
    stub.CancelOrder(pb.CancelOrderRequest(order_id=placed[0].id), metadata=auth)
    seen: list[str] = []
    token_ = ""
    while True:
        page = stub.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token_), metadata=auth)
        assert len(page.orders) <= 2
        seen.extend(o.id for o in page.orders)
        token_ = page.next_page_token
        if not token_:
            break
    assert seen == [o.id for o in reversed(placed)]
    still_placed = stub.ListOrders(pb.ListOrdersRequest(status=pb.ORDER_STATUS_PLACED), metadata=auth).orders
    assert {o.id for o in still_placed} == {o.id for o in placed[1:]}


def test_list_orders_filters_by_time_range(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("erin"), "customer"))
    first = stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key="t1"), metadata=auth).order
    request = pb.ListOrdersRequest()
    request.create_time_start.CopyFrom(first.create_time)
    request.create_time_end.FromSeconds(first.create_time.seconds + 3600)
    assert [o.id for o in stub.ListOrders(request, metadata=auth).orders] == [first.id]
    before = pb.ListOrdersRequest()
    before.create_time_end.CopyFrom(first.create_time)
    assert stub.ListOrders(before, metadata=auth).orders == []


def test_page_token_reused_with_other_filters_is_invalid(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("fred"), "customer"))
    for i in range(2):
        stub.PlaceOrder(pb.PlaceOrderRequest(lines=[line()], idempotency_key=f"f{i}"), metadata=auth)
    page = stub.ListOrders(pb.ListOrdersRequest(page_size=1), metadata=auth)
    assert page.next_page_token
    for bad in (page.next_page_token + "x", "not a token", "e30"):
        with pytest.raises(grpc.RpcError) as error:
            stub.ListOrders(
                pb.ListOrdersRequest(page_size=1, page_token=bad, status=pb.ORDER_STATUS_PLACED),
                metadata=auth,
            )
        assert violated_fields(error.value) == ["page_token"]


INVALID_PLACEMENTS = {
    "no lines": (pb.PlaceOrderRequest(idempotency_key="k"), ["lines"]),
    "missing key": (pb.PlaceOrderRequest(lines=[line()]), ["idempotency_key"]),
    "key too long": (pb.PlaceOrderRequest(lines=[line()], idempotency_key="k" * 129), ["idempotency_key"]),
    "key not printable": (pb.PlaceOrderRequest(lines=[line()], idempotency_key="k\n"), ["idempotency_key"]),
    "zero quantity": (
        pb.PlaceOrderRequest(lines=[line(quantity=0)], idempotency_key="k"),
        ["lines[0].quantity"],
    ),
    "negative quantity": (
        pb.PlaceOrderRequest(lines=[line(), line(quantity=-3)], idempotency_key="k"),
        ["lines[1].quantity"],
    ),
    "huge quantity": (
        pb.PlaceOrderRequest(lines=[line(quantity=1_000_001)], idempotency_key="k"),
        ["lines[0].quantity"],
    ),
    "101 lines": (pb.PlaceOrderRequest(lines=[line()] * 101, idempotency_key="k"), ["lines"]),
    "bad currency": (
        pb.PlaceOrderRequest(lines=[line(currency="EURO")], idempotency_key="k"),
        ["lines[0].unit_price.currency_code"],
    ),
    "lower-case currency": (
        pb.PlaceOrderRequest(lines=[line(currency="eur")], idempotency_key="k"),
        ["lines[0].unit_price.currency_code"],
    ),
    "two currencies": (
        pb.PlaceOrderRequest(lines=[line(), line(currency="USD")], idempotency_key="k"),
        ["lines[1].unit_price.currency_code"],
    ),
    "negative price": (
        pb.PlaceOrderRequest(lines=[line(amount=-1)], idempotency_key="k"),
        ["lines[0].unit_price.amount_minor"],
    ),
    "price too large": (
        pb.PlaceOrderRequest(lines=[line(amount=10**12 + 1)], idempotency_key="k"),
        ["lines[0].unit_price.amount_minor"],
    ),
    "total overflows int64": (
        pb.PlaceOrderRequest(lines=[line(quantity=1_000_000, amount=10**12)] * 10, idempotency_key="k"),
        ["lines"],
    ),
    "missing unit price": (
        pb.PlaceOrderRequest(lines=[pb.LineItem(sku="A", quantity=1)], idempotency_key="k"),
        ["lines[0].unit_price"],
    ),
    "empty sku": (pb.PlaceOrderRequest(lines=[line(sku="")], idempotency_key="k"), ["lines[0].sku"]),
    "sku too long": (pb.PlaceOrderRequest(lines=[line(sku="S" * 65)], idempotency_key="k"), ["lines[0].sku"]),
    "sku with spaces": (pb.PlaceOrderRequest(lines=[line(sku="a b")], idempotency_key="k"), ["lines[0].sku"]),
}


@pytest.mark.parametrize("case", INVALID_PLACEMENTS, ids=list(INVALID_PLACEMENTS))
def test_invalid_place_order_is_rejected_naming_the_field(
    case: str, stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    request, fields = INVALID_PLACEMENTS[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.PlaceOrder(request, metadata=bearer(token(who("alice"), "customer")), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error.value) == fields


def test_invalid_get_cancel_and_list_requests_name_the_field(
    stub: Stub, token: Callable[..., str], who: Callable[[str], str]
) -> None:
    auth = bearer(token(who("alice"), "customer"))
    cases: list[tuple[Callable[..., object], object, list[str]]] = [
        (stub.GetOrder, pb.GetOrderRequest(), ["order_id"]),
        (stub.GetOrder, pb.GetOrderRequest(order_id="x" * 65), ["order_id"]),
        (stub.CancelOrder, pb.CancelOrderRequest(order_id="x", reason="r" * 501), ["reason"]),
        (stub.ListOrders, pb.ListOrdersRequest(page_size=1001), ["page_size"]),
        (stub.ListOrders, pb.ListOrdersRequest(page_size=-1), ["page_size"]),
        (stub.ListOrders, pb.ListOrdersRequest(status=7), ["status"]),  # type: ignore[arg-type]
    ]
    reversed_range = pb.ListOrdersRequest()
    reversed_range.create_time_start.FromSeconds(2000)
    reversed_range.create_time_end.FromSeconds(1000)
    cases.append((stub.ListOrders, reversed_range, ["create_time_end"]))
    for call, request, fields in cases:
        with pytest.raises(grpc.RpcError) as error:
            call(request, metadata=auth, timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert violated_fields(error.value) == fields, request
