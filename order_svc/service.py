"""The gRPC servicer of order_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.order.v1 import order_service_pb2_grpc


class OrderService(order_service_pb2_grpc.OrderServiceServicer):
    """Order placement with a transactional outbox.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
