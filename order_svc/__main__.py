"""Start order_svc: `python -m order_svc`."""

from __future__ import annotations

from switchboard.order.v1 import order_service_pb2_grpc

from mesh.server import MeshServer
from order_svc.config import OrderConfig
from order_svc.service import OrderService

SERVICE_NAME = "switchboard.order.v1.OrderService"


def main() -> None:
    config = OrderConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(
        SERVICE_NAME, OrderService(), order_service_pb2_grpc.add_OrderServiceServicer_to_server
    )
    server.run()


if __name__ == "__main__":
    main()
