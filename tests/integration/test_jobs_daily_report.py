"""The daily_report job end to end: scheduler_svc's worker asks a real activity_svc
(over gRPC, as a service) for one day's order figures, and the submitter reads
them back as the job's result through registration_svc."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc as agrpc
from switchboard.events.v1 import order_events_pb2
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.type.v1.money_pb2 import Money

from mesh.bus import Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.jobs_catalogue import DEFAULT_CATALOGUE_FILE
from mesh.processes import free_port, wait_until
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


def _lax_catalogue(tmp_path: Path) -> str:
    """The shipped catalogue without its string formats: SubmitJob then lets a
    date through that only activity_svc refuses (a downstream INVALID_ARGUMENT)."""
    shipped = DEFAULT_CATALOGUE_FILE.read_text(encoding="utf-8")
    lax = tmp_path / "lax.toml"
    lax.write_text("\n".join(line for line in shipped.splitlines() if not line.strip().startswith("format")))
    return str(lax)


@pytest.fixture
def lax_mesh(
    start_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    isolation: dict[str, str],
    tmp_path: Path,
) -> Iterator[JobsMesh]:
    """The three services, registration and scheduler on the lax catalogue."""
    catalogue = _lax_catalogue(tmp_path)
    jobs = JobsMesh.isolated(start_service, token, isolation)
    jobs.databases["activity"] = isolation["MONGO_DB"] + "_act"
    activity = jobs.start_activity()
    jobs.start_registration(JOB_CATALOGUE_FILE=catalogue)
    jobs.start_scheduler(ACTIVITY_TARGET=activity.target, JOB_CATALOGUE_FILE=catalogue, RETRY_DELAY_S="0.5")
    yield jobs
    jobs.close()


def test_daily_report_with_an_invalid_date_or_zone_is_refused_at_submission(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"date": "9999-12-31"}, "parameters.date"),
        ({"date": "2021-02-29"}, "parameters.date"),
        ({"date": "2021-03-14", "time_zone": "Mars/Base"}, "parameters.time_zone"),
    ]
    for parameters, field in cases:
        with pytest.raises(grpc.RpcError) as error:
            alice.submit("daily_report", **parameters)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in _fields(error.value)


def test_a_job_failing_with_a_permanent_downstream_error_is_attempted_exactly_once(
    lax_mesh: JobsMesh,
) -> None:
    alice, admin = lax_mesh.users("alice"), lax_mesh.users("ops", "operator")
    job = alice.submit("daily_report", date="9999-12-31", time_zone="Europe/Paris")

    failed = alice.wait_status(job.id, reg.JOB_STATUS_FAILED, timeout_s=20)

    assert "INVALID_ARGUMENT" in failed.error and failed.max_attempts == 3
    seen = admin.admin_get(job.id)
    assert seen.attempt == 1 and [a.number for a in seen.attempts] == [1]
    assert "INVALID_ARGUMENT" in seen.attempts[0].error


def test_a_job_failing_with_a_transient_error_is_retried_with_a_growing_backoff(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> None:
    jobs = JobsMesh.isolated(start_service, token, isolation)
    try:
        jobs.start_registration()
        # nothing listens there: every attempt ends UNAVAILABLE
        jobs.start_scheduler(ACTIVITY_TARGET=f"127.0.0.1:{free_port()}", RETRY_DELAY_S="0.5")
        alice, admin = jobs.users("alice"), jobs.users("ops", "operator")
        job = alice.submit("daily_report", date="2021-03-14")

        failed = alice.wait_status(job.id, reg.JOB_STATUS_FAILED, timeout_s=30)

        assert failed.attempt == failed.max_attempts == 3 and "UNAVAILABLE" in failed.error
        attempts = admin.admin_get(job.id).attempts
        assert [a.number for a in attempts] == [1, 2, 3]
        pauses = [
            (later.start_time.ToNanoseconds() - earlier.end_time.ToNanoseconds()) / 1e9
            for earlier, later in itertools.pairwise(attempts)
        ]
        # RETRY_DELAY_S=0.5 doubled per retry (RETRY_BACKOFF_FACTOR=2): 0.5 s, then 1 s
        assert pauses[0] >= 0.5 and pauses[1] >= 1.0, pauses
    finally:
        jobs.close()


def test_the_scheduler_refuses_parameters_its_catalogue_rejects_without_running_them(
    start_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    isolation: dict[str, str],
    tmp_path: Path,
) -> None:
    jobs = JobsMesh.isolated(start_service, token, isolation)
    try:
        jobs.start_registration(JOB_CATALOGUE_FILE=_lax_catalogue(tmp_path))  # lets the date through
        jobs.start_scheduler()  # the shipped catalogue: the date is invalid
        alice, admin = jobs.users("alice"), jobs.users("ops", "operator")
        job = alice.submit("daily_report", date="2021-02-30")

        failed = alice.wait_status(job.id, reg.JOB_STATUS_FAILED, timeout_s=20)

        assert failed.error.startswith("INVALID_ARGUMENT") and "parameters.date" in failed.error
        assert failed.attempt == 0 and list(admin.admin_get(job.id).attempts) == []
    finally:
        jobs.close()


def _fields(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return {v.field for v in bad_request.field_violations}
