"""An operator replays a dead-lettered event on a consumer-only service
(activity_svc, no outbox): an order event that failed while MongoDB was down is
parked, listed by EventAdminService, replayed once the store is back, and then
counted exactly once. Real processes, real broker, real store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc
from switchboard.admin.v1 import event_admin_pb2 as pb
from switchboard.admin.v1 import event_admin_pb2_grpc
from switchboard.events.v1 import order_events_pb2
from switchboard.type.v1.money_pb2 import Money

from mesh.bus import Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.events import new_event
from mesh.processes import wait_until
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess

PARKED_DAY = dt.datetime(2020, 2, 29, 12, tzinfo=dt.UTC)


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A store of this test alone: it is stopped mid-test."""
    server = EmbeddedMongo(tmp_path / "mongo").start()
    yield server
    server.stop()


def test_a_dead_lettered_event_replayed_by_an_operator_is_counted_once(
    own_mongo: EmbeddedMongo,
    service_env: dict[str, str],
    isolation: dict[str, str],
    tmp_path: Path,
    token: Callable[..., str],
) -> None:
    env = {
        **service_env,
        "MONGO_URL": own_mongo.url,
        "MONGO_TIMEOUT_MS": "300",
        "BUS_MAX_ATTEMPTS": "2",
        "BUS_RETRY_DELAYS_MS": "[100]",
    }
    activity = ServiceProcess("activity_svc", env, tmp_path / "logs").start()
    publisher = Publisher(
        MeshConfig(rabbitmq_url=RABBITMQ_URL, events_exchange=isolation["EVENTS_EXCHANGE"]), name="test"
    ).start()
    operator = bearer(token("ops", "operator"))
    queue = isolation["QUEUE_PREFIX"] + "activity"
    event = new_event(
        "order.created.v1",
        "test",
        "orders/parked",
        order_events_pb2.OrderCreated(total=Money(currency_code="EUR", amount_minor=700)),
    )
    event.time.FromDatetime(PARKED_DAY)
    restarted = EmbeddedMongo(own_mongo.data_dir, port=own_mongo.port)
    try:
        with grpc.insecure_channel(activity.target) as channel:
            admin = event_admin_pb2_grpc.EventAdminServiceStub(channel)
            stats = activity_service_pb2_grpc.ActivityServiceStub(channel)

            def parked() -> list[pb.DeadLetter]:
                request = pb.ListDeadLettersRequest(queue=queue)
                return list(admin.ListDeadLetters(request, metadata=operator, timeout=10).dead_letters)

            def orders_placed() -> int:
                request = apb.GetDailyStatsRequest(date=PARKED_DAY.date().isoformat())
                return stats.GetDailyStats(request, metadata=operator, timeout=10).stats.orders_placed

            assert publisher.wait_ready(10)
            own_mongo.stop()
            publisher.publish(event).result(10)
            assert wait_until(lambda: [m.message_id for m in parked()] == [event.id], 30, 0.2)
            assert parked()[0].event_type == "order.created.v1"

            restarted.start(same_port=True)
            assert wait_until(activity.serving, 30, 0.1)
            replay = pb.ReplayDeadLettersRequest(queue=queue, message_ids=[event.id])
            assert admin.ReplayDeadLetters(replay, metadata=operator, timeout=10).replayed_count == 1

            assert wait_until(lambda: orders_placed() == 1, 20, 0.1)
            assert parked() == []
            # a second replay finds nothing, and the event is not counted twice
            assert admin.ReplayDeadLetters(replay, metadata=operator, timeout=10).replayed_count == 0
            assert orders_placed() == 1
    finally:
        publisher.close()
        activity.stop()
        restarted.stop()
