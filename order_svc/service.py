"""The gRPC servicer of order_svc: proto in, command out, proto back. Store work
is blocking pymongo, so every handler call runs in a worker thread."""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from switchboard.order.v1 import order_service_pb2 as pb
from switchboard.order.v1 import order_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from mesh.auth import current_principal
from mesh.batching import GroupCommit
from mesh.errors import PermissionDenied, Violations
from mesh.paging import page_size
from mesh.protos import timestamp_ms
from order_svc.config import OrderConfig
from order_svc.handlers import CancelOrder, ListOrders, OrderHandlers, Placement, PlaceOrder
from order_svc.model import LineInput, Order, OrderStatus
from order_svc.repository import OrderQuery

STATUS_TO_PB = {
    OrderStatus.PLACED: pb.ORDER_STATUS_PLACED,
    OrderStatus.CANCELLED: pb.ORDER_STATUS_CANCELLED,
}
STATUS_FROM_PB = {value: key for key, value in STATUS_TO_PB.items()}
# Timestamp bounds of google.protobuf.Timestamp (0001-01-01 .. 9999-12-31)
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OrderService(order_service_pb2_grpc.OrderServiceServicer):
    """Places, reads, lists and cancels orders (transactional outbox)."""

    def __init__(
        self,
        handlers: OrderHandlers,
        config: OrderConfig,
        placements: GroupCommit[Placement, Order],
    ) -> None:
        self.handlers = handlers
        self.config = config
        self.placements = placements  # group commit of placements

    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlaceOrderResponse:
        command = PlaceOrder(
            customer_id=current_principal().user_id,
            lines=[
                LineInput(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price.amount_minor,
                    currency_code=line.unit_price.currency_code,
                    has_unit_price=line.HasField("unit_price"),
                )
                for line in request.lines
            ],
            idempotency_key=request.idempotency_key,
        )
        placement = self.handlers.prepare(command, _now_ms())
        order = await self.placements.call(placement)
        return pb.PlaceOrderResponse(order=order_to_pb(order))

    async def GetOrder(
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrderResponse:
        violations = Violations()
        violations.text(request.order_id, "order_id", max_len=self.config.max_id_len)
        violations.raise_if_any()
        order = await asyncio.to_thread(self.handlers.get_order, request.order_id, current_principal())
        return pb.GetOrderResponse(order=order_to_pb(order))

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelOrderResponse:
        violations = Violations()
        violations.text(request.order_id, "order_id", max_len=self.config.max_id_len)
        violations.text(request.reason, "reason", max_len=self.config.max_reason_len, required=False)
        violations.raise_if_any()
        command = CancelOrder(order_id=request.order_id, reason=request.reason)
        order = await asyncio.to_thread(self.handlers.cancel_order, command, current_principal(), _now_ms())
        return pb.CancelOrderResponse(order=order_to_pb(order))

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrdersResponse:
        principal = current_principal()
        violations = Violations()
        size = page_size(
            request.page_size, self.config.default_page_size, self.config.max_page_size, violations
        )
        status = None
        if request.status != pb.ORDER_STATUS_UNSPECIFIED:
            status = STATUS_FROM_PB.get(request.status)  # type: ignore[call-overload]
            violations.check(status is not None, "status", "is not a known OrderStatus")
        start = _time_filter(request, "create_time_start", violations)
        end = _time_filter(request, "create_time_end", violations)
        if start is not None and end is not None:
            violations.check(start < end, "create_time_end", "must be after create_time_start")
        violations.text(request.customer_id, "customer_id", max_len=self.config.max_id_len, required=False)
        # customers always see only their own orders; privileged callers may filter. A
        # filter naming another customer is refused, not ignored: no answer may look
        # like that customer's list.
        if not principal.is_privileged and request.customer_id not in ("", principal.user_id):
            raise PermissionDenied("customer_id: customers list only their own orders")
        customer = (request.customer_id or None) if principal.is_privileged else principal.user_id
        command = ListOrders(
            query=OrderQuery(customer_id=customer, status=status, create_start_ms=start, create_end_ms=end),
            page_size=size,
            page_token=request.page_token,
        )
        page = await asyncio.to_thread(self.handlers.list_orders, command, violations)
        return pb.ListOrdersResponse(
            orders=[order_to_pb(order) for order in page.orders], next_page_token=page.next_page_token
        )


def _time_filter(request: pb.ListOrdersRequest, name: str, violations: Violations) -> int | None:
    if not request.HasField(name):
        return None
    stamp: Timestamp = getattr(request, name)
    ok = MIN_SECONDS <= stamp.seconds <= MAX_SECONDS and 0 <= stamp.nanos < 1_000_000_000
    if not violations.check(ok, name, "is not a valid timestamp"):
        return None
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def order_to_pb(order: Order) -> pb.Order:
    def money(amount: int) -> Money:
        return Money(currency_code=order.currency_code, amount_minor=amount)

    message = pb.Order(
        id=order.id,
        customer_id=order.customer_id,
        lines=[
            pb.LineItem(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
                line_total=money(line.total_minor),
            )
            for line in order.lines
        ],
        total=money(order.total_minor),
        currency_code=order.currency_code,
        status=STATUS_TO_PB[order.status],
        idempotency_key=order.idempotency_key,
        create_time=timestamp_ms(order.create_ms),
        update_time=timestamp_ms(order.update_ms),
    )
    if order.cancel_ms is not None:
        message.cancel_time.CopyFrom(timestamp_ms(order.cancel_ms))
    return message
