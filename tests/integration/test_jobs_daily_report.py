"""The daily_report job end to end: scheduler_svc's worker asks a real activity_svc
(over gRPC, as a service) for one day's order figures, and the submitter reads
them back as the job's result through registration_svc."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf.message import Message
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc as agrpc
from switchboard.events.v1 import order_events_pb2
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.type.v1.money_pb2 import Money

from mesh.bus import Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.processes import wait_until
from tests.integration.test_jobs_support import JobsMesh
from tests.support.processes import RABBITMQ_URL, ServiceProcess

REPORT_DAY = dt.datetime(2021, 3, 14, 12, 0, tzinfo=dt.UTC)  # a day no other event falls on


@pytest.fixture
def mesh(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> Iterator[JobsMesh]:
    databases = {
        "registration": isolation["MONGO_DB"] + "_reg",
        "scheduler": isolation["MONGO_DB"] + "_sch",
        "activity": isolation["MONGO_DB"] + "_act",
    }
    jobs = JobsMesh(start_service, token, databases, isolation)
    activity = jobs.start_activity()
    jobs.start_registration()
    jobs.start_scheduler(ACTIVITY_TARGET=activity.target)
    yield jobs
    jobs.close()


def _order_event(event_type: str, data: Message, when: dt.datetime) -> Event:
    event = new_event(event_type, "test", "orders/x", data)
    event.time.FromDatetime(when)
    return event


def _publish_orders(isolation: dict[str, str]) -> None:
    """Three orders placed and one cancelled on REPORT_DAY, one placed the day after."""
    day_after = REPORT_DAY + dt.timedelta(days=1)
    events = [
        _order_event("order.created.v1", order_events_pb2.OrderCreated(total=_eur(1000)), REPORT_DAY),
        _order_event("order.created.v1", order_events_pb2.OrderCreated(total=_eur(500)), REPORT_DAY),
        _order_event(
            "order.created.v1",
            order_events_pb2.OrderCreated(total=Money(currency_code="USD", amount_minor=250)),
            REPORT_DAY,
        ),
        _order_event("order.cancelled.v1", order_events_pb2.OrderCancelled(total=_eur(500)), REPORT_DAY),
        _order_event("order.created.v1", order_events_pb2.OrderCreated(total=_eur(9999)), day_after),
    ]
    config = MeshConfig(rabbitmq_url=RABBITMQ_URL, events_exchange=isolation["EVENTS_EXCHANGE"])
    publisher = Publisher(config, name="test-orders").start()
    try:
        assert publisher.wait_ready(10)
        for event in events:
            publisher.publish(event).result(10)
    finally:
        publisher.close()


def _eur(amount_minor: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount_minor)


def test_daily_report_job_returns_the_days_order_figures_from_activity(
    mesh: JobsMesh, token: Callable[..., str], isolation: dict[str, str]
) -> None:
    _publish_orders(isolation)
    assert mesh.activity is not None
    with grpc.insecure_channel(mesh.activity.target) as channel:
        stats = agrpc.ActivityServiceStub(channel)
        request = apb.GetDailyStatsRequest(date=REPORT_DAY.date().isoformat())
        operator = bearer(token("ops", "operator"))

        def events_counted() -> int:
            return sum(stats.GetDailyStats(request, metadata=operator, timeout=5).stats.counters.values())

        # activity_svc has consumed the orders before the report is asked for
        assert wait_until(lambda: events_counted() == 4, 20, 0.1)
    alice = mesh.users("alice")

    job = alice.submit("daily_report", date=REPORT_DAY.date().isoformat())
    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=20)

    report = dict(done.result)
    assert report["date"] == "2021-03-14" and report["timeZone"] == "UTC"
    assert int(report["ordersPlaced"]) == 3 and int(report["ordersCancelled"]) == 1
    revenue = {entry["currencyCode"]: int(entry["amountMinor"]) for entry in report["revenue"]}
    assert revenue == {"EUR": 1500, "USD": 250}
    assert done.attempt == 1
