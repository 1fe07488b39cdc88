"""The statistics effect through the real inbox and MongoDB, without the bus:
exactly-once counting per event id, and UTC-day versus local-day reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from switchboard.events.v1 import order_events_pb2
from switchboard.type.v1.money_pb2 import Money

from activity_svc.handlers import StatsQueries, StatsRecorder
from activity_svc.notifier import ChangeNotifier
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.inbox import Inbox
from mesh.store import Store, UnitOfWork
from tests.support.processes import EmbeddedMongo, unique


@pytest.fixture
def store(mongo: EmbeddedMongo) -> Iterator[Store]:
    store = Store(mongo.url, unique("activity"))
    yield store
    store.close()


@pytest.fixture
def inbox(store: Store) -> Inbox:
    return Inbox(store, MeshConfig())


def created(amount: int, when: dt.datetime, currency: str = "EUR") -> Event:
    data = order_events_pb2.OrderCreated(total=Money(currency_code=currency, amount_minor=amount))
    event = new_event("order.created.v1", "test", "orders/1", data)
    event.time.FromDatetime(when)
    return event


def test_the_same_event_handled_twice_counts_once(store: Store, inbox: Inbox) -> None:
    recorder = StatsRecorder(ChangeNotifier(), 900)
    event = created(250, dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC))
    assert inbox.handle(event, recorder) is True
    assert inbox.handle(event, recorder) is False
    figures = StatsQueries(store).daily(dt.date(2024, 5, 1), "").figures
    assert (figures.orders_placed, figures.revenue, figures.counters) == (
        1,
        {"EUR": 250},
        {"order.created.v1": 1},
    )


def test_many_events_in_one_bucket_add_up_exactly(store: Store, inbox: Inbox) -> None:
    recorder = StatsRecorder(ChangeNotifier(), 900)
    for n in range(1, 21):
        inbox.handle(created(n, dt.datetime(2024, 5, 2, 8, 1, tzinfo=dt.UTC)), recorder)
    inbox.handle(created(7, dt.datetime(2024, 5, 2, 8, 2, tzinfo=dt.UTC), "JPY"), recorder)
    utc = StatsQueries(store).daily(dt.date(2024, 5, 2), "").figures
    tokyo = StatsQueries(store).daily(dt.date(2024, 5, 2), "Asia/Tokyo").figures
    assert utc.orders_placed == tokyo.orders_placed == 21
    assert utc.revenue == tokyo.revenue == {"EUR": 210, "JPY": 7}


def test_a_commit_notifies_watchers(store: Store, inbox: Inbox) -> None:
    calls: list[int] = []

    class Counting(ChangeNotifier):
        def notify(self) -> None:
            calls.append(1)

    recorder = StatsRecorder(Counting(), 900)
    event = created(1, dt.datetime(2024, 5, 3, tzinfo=dt.UTC))
    inbox.handle(event, recorder)
    inbox.handle(event, recorder)  # a duplicate commits nothing, so notifies nobody
    assert calls == [1]


def test_events_of_one_transaction_add_up_across_days_and_buckets(store: Store) -> None:
    recorder = StatsRecorder(ChangeNotifier(), 900)
    events = [
        created(5, dt.datetime(2024, 5, 4, 23, 50, tzinfo=dt.UTC)),
        created(6, dt.datetime(2024, 5, 4, 23, 55, tzinfo=dt.UTC), "USD"),
        created(7, dt.datetime(2024, 5, 5, 0, 5, tzinfo=dt.UTC)),
        created(8, dt.datetime(2024, 5, 5, 0, 20, tzinfo=dt.UTC)),
    ]

    def record_all(uow: UnitOfWork) -> None:
        for event in events:
            recorder(uow, event)

    store.transaction(record_all)
    first, second = StatsQueries(store).range(dt.date(2024, 5, 4), dt.date(2024, 5, 5), "")
    assert (first.figures.orders_placed, first.figures.revenue) == (2, {"EUR": 5, "USD": 6})
    assert (second.figures.orders_placed, second.figures.revenue) == (2, {"EUR": 15})
    # the buckets hold the same sums: Lagos (UTC+1) regroups all four into its 5 May
    lagos = StatsQueries(store).range(dt.date(2024, 5, 5), dt.date(2024, 5, 5), "Africa/Lagos")[0]
    assert (lagos.figures.orders_placed, lagos.figures.revenue) == (4, {"EUR": 20, "USD": 6})
