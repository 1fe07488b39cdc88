"""activity_svc against real processes, MongoDB and RabbitMQ: orders placed through
order_svc show up in the day's figures; duplicates, unknown types, poison
messages, time zones, paging and WatchStats."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc
from switchboard.events.v1 import order_events_pb2
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc
from switchboard.type.v1.money_pb2 import Money

from mesh.bus import DeadLetters, Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.dates import known_time_zones
from mesh.events import Event, new_event
from mesh.processes import wait_until
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique

FAST_RETRIES = {"BUS_RETRY_DELAYS_MS": "[50]", "BUS_MAX_ATTEMPTS": "2"}


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def money(amount: int, currency: str = "EUR") -> Money:
    return Money(currency_code=currency, amount_minor=amount)


@pytest.fixture(scope="module")
def mesh_env(mongo: EmbeddedMongo, keys: Path) -> dict[str, str]:
    """One isolated set of names for the module: its processes start once (a
    process per test would dominate the run time). Tests that publish events
    date them on days of their own; tests on today's figures compare deltas."""
    tag = unique("activity")
    return {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        **FAST_RETRIES,
    }


@pytest.fixture(scope="module")
def activity(mesh_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess("activity_svc", mesh_env, tmp_path_factory.mktemp("logs")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def orders(
    mesh_env: dict[str, str], activity: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    process = ServiceProcess("order_svc", mesh_env, tmp_path_factory.mktemp("logs")).start()
    yield process
    process.stop()


@pytest.fixture
def stats(activity: ServiceProcess) -> Iterator[activity_service_pb2_grpc.ActivityServiceStub]:
    with grpc.insecure_channel(activity.target) as channel:
        yield activity_service_pb2_grpc.ActivityServiceStub(channel)


@pytest.fixture(scope="module")
def publisher(mesh_env: dict[str, str], activity: ServiceProcess) -> Iterator[Publisher]:
    config = MeshConfig(rabbitmq_url=mesh_env["RABBITMQ_URL"], events_exchange=mesh_env["EVENTS_EXCHANGE"])
    publisher = Publisher(config, name="test").start()
    assert publisher.wait_ready(10)
    yield publisher
    publisher.close()


@pytest.fixture
def operator(token: Callable[..., str]) -> tuple[tuple[str, str], ...]:
    return bearer(token("ops", "operator"))


def order_event(event_type: str, data: Message, when: dt.datetime) -> Event:
    event = new_event(event_type, "test", "orders/x", data)
    event.time.FromDatetime(when)
    return event


def created(amount: int, currency: str = "EUR", when: dt.datetime | None = None) -> Event:
    when = when or dt.datetime.now(dt.UTC)
    return order_event("order.created.v1", order_events_pb2.OrderCreated(total=money(amount, currency)), when)


def counter_delta(before: apb.DailyStats, after: apb.DailyStats) -> dict[str, int]:
    changed = {k: v - before.counters.get(k, 0) for k, v in after.counters.items()}
    return {k: v for k, v in changed.items() if v}


def money_delta(before: Iterable[Money], after: Iterable[Money]) -> dict[str, int]:
    old = {m.currency_code: m.amount_minor for m in before}
    changed = {m.currency_code: m.amount_minor - old.get(m.currency_code, 0) for m in after}
    return {k: v for k, v in changed.items() if v}


def day_stats(
    stub: activity_service_pb2_grpc.ActivityServiceStub, auth: object, date: str, time_zone: str = ""
) -> apb.DailyStats:
    request = apb.GetDailyStatsRequest(date=date, time_zone=time_zone)
    return stub.GetDailyStats(request, metadata=auth, timeout=10).stats


def test_placed_and_cancelled_orders_are_counted_with_revenue_per_currency(
    orders: ServiceProcess,
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    operator: tuple[tuple[str, str], ...],
    token: Callable[..., str],
) -> None:
    before = day_stats(stats, operator, today())
    auth = bearer(token("alice", "customer"))
    with grpc.insecure_channel(orders.target) as channel:
        stub = order_service_pb2_grpc.OrderServiceStub(channel)

        def place(key: str, amount: int, currency: str) -> opb.Order:
            line = opb.LineItem(sku="S", quantity=2, unit_price=money(amount, currency))
            return stub.PlaceOrder(
                opb.PlaceOrderRequest(lines=[line], idempotency_key=key), metadata=auth
            ).order

        first = place("1", 500, "EUR")
        place("2", 250, "EUR")
        place("3", 100, "USD")
        stub.CancelOrder(opb.CancelOrderRequest(order_id=first.id), metadata=auth)
    expected = {"order.created.v1": 3, "order.cancelled.v1": 1}
    assert wait_until(lambda: counter_delta(before, day_stats(stats, operator, today())) == expected, 10)
    after = day_stats(stats, operator, today())
    assert (after.orders_placed - before.orders_placed, after.orders_cancelled - before.orders_cancelled) == (
        3,
        1,
    )
    assert money_delta(before.revenue, after.revenue) == {"EUR": 1500, "USD": 200}
    assert money_delta(before.cancelled_revenue, after.cancelled_revenue) == {"EUR": 1000}
    assert dict(after.unknown_event_counts) == {}


def test_order_appears_in_todays_figures_within_a_second(
    orders: ServiceProcess,
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    operator: tuple[tuple[str, str], ...],
    token: Callable[..., str],
) -> None:
    before = day_stats(stats, operator, today()).orders_placed
    with grpc.insecure_channel(orders.target) as channel:
        stub = order_service_pb2_grpc.OrderServiceStub(channel)
        line = opb.LineItem(sku="S", quantity=1, unit_price=money(100))
        request = opb.PlaceOrderRequest(lines=[line], idempotency_key="fast")
        stub.PlaceOrder(request, metadata=bearer(token("bob", "customer")), timeout=10)
    placed_at = time.monotonic()
    assert wait_until(lambda: day_stats(stats, operator, today()).orders_placed == before + 1, 10, 0.02)
    # one second is the target under normal load; allow for a loaded test machine
    assert time.monotonic() - placed_at < 2.0


def test_duplicated_delivery_does_not_double_count(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
) -> None:
    day = dt.datetime(2023, 1, 1, 12, tzinfo=dt.UTC)
    event = created(700, when=day)
    for _ in range(3):
        publisher.publish(event).result(10)
    publisher.publish(created(1, when=day)).result(10)  # a later event: the duplicates went before it
    assert wait_until(lambda: day_stats(stats, operator, "2023-01-01").orders_placed == 2, 10)
    time.sleep(0.3)  # nothing may trickle in after the sentinel
    figures = day_stats(stats, operator, "2023-01-01")
    assert figures.orders_placed == 2
    assert list(figures.revenue) == [money(701)]


def test_unknown_event_types_are_counted_by_type_name(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
) -> None:
    day = dt.datetime(2023, 1, 2, 12, tzinfo=dt.UTC)
    for event_type in ("robot.waved.v1", "robot.waved.v1", "job.registered.v1"):
        publisher.publish(order_event(event_type, Money(), day)).result(10)
    expected = {"robot.waved.v1": 2, "job.registered.v1": 1}
    assert wait_until(
        lambda: dict(day_stats(stats, operator, "2023-01-02").unknown_event_counts) == expected, 10
    )
    assert dict(day_stats(stats, operator, "2023-01-02").counters) == expected


def test_poison_message_is_parked_and_does_not_block_later_events(
    activity: ServiceProcess,
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
    mesh_env: dict[str, str],
) -> None:
    # an order.created.v1 whose payload is not an OrderCreated cannot be counted
    day = dt.datetime(2023, 1, 3, 12, tzinfo=dt.UTC)
    poison = order_event("order.created.v1", Money(currency_code="EUR", amount_minor=1), day)
    publisher.publish(poison).result(10)
    publisher.publish(created(42, when=day)).result(10)
    assert wait_until(lambda: day_stats(stats, operator, "2023-01-03").orders_placed == 1, 10)
    config = MeshConfig(rabbitmq_url=mesh_env["RABBITMQ_URL"])
    queue = f"{mesh_env['QUEUE_PREFIX']}activity"

    def parked() -> list[str]:
        return [m.message_id for m in DeadLetters(config).peek(queue, 10)]

    assert wait_until(lambda: parked() == [poison.id], 10, 0.2)
    assert day_stats(stats, operator, "2023-01-03").orders_placed == 1


def test_local_day_in_another_time_zone_is_summed_from_utc_buckets(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
) -> None:
    # 2024-03-10 23:30 UTC is already 2024-03-11 in Paris (+1) and in Kolkata (+5:30);
    # 2024-03-11 18:40 UTC is 2024-03-12 00:10 in Kolkata but still the 11th in Paris
    late = created(100, when=dt.datetime(2024, 3, 10, 23, 30, tzinfo=dt.UTC))
    later = created(10, when=dt.datetime(2024, 3, 11, 18, 40, tzinfo=dt.UTC))
    for event in (late, later):
        publisher.publish(event).result(10)
    assert wait_until(lambda: day_stats(stats, operator, "2024-03-11").orders_placed == 1, 10)
    assert day_stats(stats, operator, "2024-03-10").orders_placed == 1
    paris = day_stats(stats, operator, "2024-03-11", "Europe/Paris")
    assert (paris.orders_placed, list(paris.revenue), paris.time_zone) == (2, [money(110)], "Europe/Paris")
    kolkata = [
        day_stats(stats, operator, d, "Asia/Kolkata").orders_placed for d in ("2024-03-11", "2024-03-12")
    ]
    assert kolkata == [1, 1]


def test_list_daily_stats_pages_through_every_day_of_the_range(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
) -> None:
    publisher.publish(created(5, when=dt.datetime(2024, 1, 3, 12, tzinfo=dt.UTC))).result(10)
    assert wait_until(lambda: day_stats(stats, operator, "2024-01-03").orders_placed == 1, 10)
    dates, placed, token_ = [], [], ""
    while True:
        request = apb.ListDailyStatsRequest(
            start_date="2024-01-01", end_date="2024-01-05", page_size=2, page_token=token_
        )
        page = stats.ListDailyStats(request, metadata=operator, timeout=10)
        dates += [s.date for s in page.stats]
        placed += [s.orders_placed for s in page.stats]
        token_ = page.next_page_token
        if not token_:
            break
    assert dates == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert placed == [0, 0, 1, 0, 0]


def test_watch_stats_sends_current_figures_then_an_update_per_change(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    publisher: Publisher,
    operator: tuple[tuple[str, str], ...],
) -> None:
    stream = stats.WatchStats(apb.WatchStatsRequest(date=today()), metadata=operator, timeout=20)
    try:
        first = next(stream)
        publisher.publish(created(300)).result(10)
        sent = time.monotonic()
        update = next(stream)
        assert update.stats.orders_placed == first.stats.orders_placed + 1
        assert money_delta(first.stats.revenue, update.stats.revenue) == {"EUR": 300}
        assert time.monotonic() - sent < 2.0
    finally:
        stream.cancel()


def test_customer_may_not_read_statistics(
    stats: activity_service_pb2_grpc.ActivityServiceStub, token: Callable[..., str]
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        day_stats(stats, bearer(token("alice", "customer")), today())
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def violated_fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [v.field for v in bad_request.field_violations]


def test_invalid_stats_requests_name_the_field(
    stats: activity_service_pb2_grpc.ActivityServiceStub, operator: tuple[tuple[str, str], ...]
) -> None:
    cases: list[tuple[Callable[..., object], Message, list[str]]] = [
        (stats.GetDailyStats, apb.GetDailyStatsRequest(), ["date"]),
        (stats.GetDailyStats, apb.GetDailyStatsRequest(date="2024-02-30"), ["date"]),
        (stats.GetDailyStats, apb.GetDailyStatsRequest(date="20240101"), ["date"]),
        (
            stats.GetDailyStats,
            apb.GetDailyStatsRequest(date="2024-01-01", time_zone="Mars/Olympus"),
            ["time_zone"],
        ),
        (stats.GetDailyStats, apb.GetDailyStatsRequest(date="2024-01-01", time_zone="Z" * 65), ["time_zone"]),
        (
            stats.ListDailyStats,
            apb.ListDailyStatsRequest(start_date="2024-01-02", end_date="2024-01-01"),
            ["end_date"],
        ),
        (
            stats.ListDailyStats,
            apb.ListDailyStatsRequest(start_date="2024-01-01", end_date="2025-01-02"),
            ["end_date"],
        ),
        (
            stats.ListDailyStats,
            apb.ListDailyStatsRequest(start_date="2024-01-01", end_date="2024-01-02", page_size=367),
            ["page_size"],
        ),
        (
            stats.ListDailyStats,
            apb.ListDailyStatsRequest(start_date="2024-01-01", end_date="2024-01-02", page_token="bogus"),
            ["page_token"],
        ),
    ]
    for call, request, fields in cases:
        with pytest.raises(grpc.RpcError) as error:
            call(request, metadata=operator, timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert violated_fields(error.value) == fields, request
    with pytest.raises(grpc.RpcError) as watch_error:
        next(stats.WatchStats(apb.WatchStatsRequest(date="yesterday"), metadata=operator, timeout=10))
    assert watch_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# Hostile calendar inputs, field by field: each is INVALID_ARGUMENT naming its field.
HOSTILE_DATES = [
    "9999-12-31",  # the day after it does not exist: its window overflowed (was INTERNAL)
    "0001-01-01",
    "10000-01-01",
    "2024-13-01",
    "2023-02-29",
    "-001-01-01",
    "\uff12\uff10\uff12\uff14-01-01",  # fullwidth digits
    "2024-01-01T00:00",
    " 2024-01-01",
    "2024-1-1",
    "\x00",
    "9" * 1000,
]
HOSTILE_ZONES = [
    "Mars/Olympus",
    "../../etc/passwd",
    "/etc/localtime",
    "Europe",
    "zone.tab",
    "tzdata.zi",
    "Europe/Paris\n",
    "UTC ",
    "\x00",
    "Z" * 65,
]
EXTREME_ZONES = ["", "UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu", "America/St_Johns"]


def test_hostile_dates_and_zones_are_invalid_argument_on_every_rpc(
    stats: activity_service_pb2_grpc.ActivityServiceStub, operator: tuple[tuple[str, str], ...]
) -> None:
    cases: list[tuple[Callable[..., object], Message, list[str]]] = []
    for date in HOSTILE_DATES:
        for zone_name in ("", "Europe/Paris"):
            cases.append(
                (stats.GetDailyStats, apb.GetDailyStatsRequest(date=date, time_zone=zone_name), ["date"])
            )
        cases.append(
            (
                stats.ListDailyStats,
                apb.ListDailyStatsRequest(start_date=date, end_date="2024-01-01"),
                ["start_date"],
            )
        )
        cases.append(
            (
                stats.ListDailyStats,
                apb.ListDailyStatsRequest(start_date="2024-01-01", end_date=date),
                ["end_date"],
            )
        )
    for zone_name in HOSTILE_ZONES:
        cases.append(
            (
                stats.GetDailyStats,
                apb.GetDailyStatsRequest(date="2024-01-01", time_zone=zone_name),
                ["time_zone"],
            )
        )
        request = apb.ListDailyStatsRequest(
            start_date="2024-01-01", end_date="2024-01-02", time_zone=zone_name
        )
        cases.append((stats.ListDailyStats, request, ["time_zone"]))
    for call, request, fields in cases:
        with pytest.raises(grpc.RpcError) as error:
            call(request, metadata=operator, timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert violated_fields(error.value)[: len(fields)] == fields, request
    for date, zone_name, field in [
        ("9999-12-31", "Europe/Paris", "date"),
        ("2024-01-01", "../x", "time_zone"),
    ]:
        watch = stats.WatchStats(
            apb.WatchStatsRequest(date=date, time_zone=zone_name), metadata=operator, timeout=10
        )
        with pytest.raises(grpc.RpcError) as watch_error:
            next(watch)
        assert watch_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(watch_error.value) == [field]


def test_the_first_and_last_supported_days_are_answered_in_every_zone(
    stats: activity_service_pb2_grpc.ActivityServiceStub, operator: tuple[tuple[str, str], ...]
) -> None:
    for zone_name in EXTREME_ZONES:
        for date in ("0001-01-02", "9999-12-30"):
            assert day_stats(stats, operator, date, zone_name).date == date
        # a page that would reach past the last day stops at the range's end
        page = stats.ListDailyStats(
            apb.ListDailyStatsRequest(
                start_date="9999-12-01", end_date="9999-12-30", time_zone=zone_name, page_size=366
            ),
            metadata=operator,
            timeout=10,
        )
        assert [s.date for s in page.stats][-1] == "9999-12-30" and not page.next_page_token
        watch = stats.WatchStats(
            apb.WatchStatsRequest(date="9999-12-30", time_zone=zone_name), metadata=operator, timeout=10
        )
        try:
            assert next(watch).stats.date == "9999-12-30"
        finally:
            watch.cancel()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    date=st.one_of(st.text(max_size=40), st.dates().map(dt.date.isoformat)),
    zone_name=st.one_of(st.text(max_size=70), st.sampled_from(sorted(known_time_zones()))),
)
def test_any_date_and_zone_get_an_answer_or_invalid_argument_never_internal(
    stats: activity_service_pb2_grpc.ActivityServiceStub,
    operator: tuple[tuple[str, str], ...],
    date: str,
    zone_name: str,
) -> None:
    try:
        day_stats(stats, operator, date, zone_name)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (date, zone_name, error.details())
        assert set(violated_fields(error)) <= {"date", "time_zone"}
