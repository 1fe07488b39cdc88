"""Start order_svc: `python -m order_svc`."""

from __future__ import annotations

from switchboard.order.v1 import order_service_pb2_grpc

from mesh import outbox
from mesh.batching import GroupCommit
from mesh.server import MeshServer
from order_svc.config import OrderConfig
from order_svc.handlers import OrderHandlers
from order_svc.model import Limits
from order_svc.repository import OrderRepository
from order_svc.service import OrderService

SERVICE_NAME = "switchboard.order.v1.OrderService"


def main() -> None:
    config = OrderConfig()
    server = MeshServer(config)
    store = server.use_store()
    # No server.use_broker(): orders must be accepted while RabbitMQ is down (the
    # event waits in the outbox and the relay publishes it when the broker is
    # back), so health follows MongoDB only; the relay's backlog is the
    # `outbox_pending` metric, not a reason to refuse traffic.
    order_outbox = outbox.install(server)
    OrderRepository(store.db).ensure_indexes()
    limits = Limits(
        max_lines=config.max_lines,
        max_quantity=config.max_quantity,
        max_unit_price_minor=config.max_unit_price_minor,
        max_sku_len=config.max_sku_len,
        max_idempotency_key_len=config.max_idempotency_key_len,
    )
    handlers = OrderHandlers(store, order_outbox, limits, config.transaction_attempts)
    # Group commit: placements that arrive while one transaction is written share the next.
    placements = GroupCommit(
        "order-placements",
        write_batch=handlers.store_placements,
        write_one=handlers.store_placement,
        max_batch=config.place_batch_max,
    )
    server.add_worker(placements)
    servicer = OrderService(handlers, config, placements)
    server.add_service(SERVICE_NAME, servicer, order_service_pb2_grpc.add_OrderServiceServicer_to_server)
    server.run()


if __name__ == "__main__":
    main()
