"""RabbitMQ stopped → orders are still accepted → broker back → the statistics
converge to the exact counts. Stops the shared broker, so slow-marked (runs
serially after the parallel run) and bounded."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable

import grpc
import pytest
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from mesh.client import bearer
from mesh.processes import wait_until
from tests.support.processes import ServiceProcess

ORDERS_DURING_OUTAGE = 5


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.slow
def test_orders_are_accepted_while_rabbitmq_is_down_and_statistics_converge(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    activity = start_service("activity_svc")
    orders = start_service("order_svc")
    customer = bearer(token("alice", "customer"))
    operator = bearer(token("ops", "operator"))
    line = opb.LineItem(sku="S", quantity=2, unit_price=Money(currency_code="EUR", amount_minor=150))
    with (
        grpc.insecure_channel(orders.target) as order_channel,
        grpc.insecure_channel(activity.target) as stats_channel,
    ):
        order_stub = order_service_pb2_grpc.OrderServiceStub(order_channel)
        stats_stub = activity_service_pb2_grpc.ActivityServiceStub(stats_channel)

        def today_stats() -> apb.DailyStats:
            request = apb.GetDailyStatsRequest(date=dt.datetime.now(dt.UTC).date().isoformat())
            return stats_stub.GetDailyStats(request, metadata=operator, timeout=10).stats

        rabbitmqctl("stop_app")
        try:
            for n in range(ORDERS_DURING_OUTAGE):
                request = opb.PlaceOrderRequest(lines=[line], idempotency_key=f"outage-{n}")
                order_stub.PlaceOrder(request, metadata=customer, timeout=10)
            # health follows MongoDB only: the broker's absence does not stop order taking
            assert orders.health() == "SERVING"
            assert today_stats().orders_placed == 0
        finally:
            rabbitmqctl("start_app")
        assert wait_until(lambda: today_stats().orders_placed == ORDERS_DURING_OUTAGE, 60, 0.25)
        figures = today_stats()
        assert list(figures.revenue) == [Money(currency_code="EUR", amount_minor=300 * ORDERS_DURING_OUTAGE)]
        assert dict(figures.counters) == {"order.created.v1": ORDERS_DURING_OUTAGE}
