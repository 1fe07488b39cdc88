"""mesh.lease against the embedded MongoDB: one holder at a time, takeover after expiry."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from mesh.lease import Lease, LeaseKeeper
from mesh.processes import wait_until
from tests.support.processes import EmbeddedMongo, unique


def _leases(mongo: EmbeddedMongo) -> Collection[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo.url)
    return client[unique("lease")]["leases"]


def test_only_one_owner_holds_an_unexpired_lease(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    first, second = Lease(collection, "timers", "a", 5), Lease(collection, "timers", "b", 5)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.try_acquire()  # renewal by the holder
    assert first.holder() == "a"


def test_expired_lease_is_taken_over(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    first, second = Lease(collection, "timers", "a", 0.3), Lease(collection, "timers", "b", 0.3)
    assert first.try_acquire()
    assert wait_until(second.try_acquire, 2)
    assert not first.try_acquire()


def test_released_lease_is_acquired_at_once(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    first, second = Lease(collection, "timers", "a", 60), Lease(collection, "timers", "b", 60)
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()


def test_keeper_reports_loss_when_a_rival_takes_the_lease(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    lost = threading.Event()
    keeper = LeaseKeeper(Lease(collection, "timers", "a", 0.6), lambda: None, lost.set, 0.05)
    keeper.start()
    try:
        assert wait_until(lambda: keeper.held, 2)
        # A rival that ignores the protocol overwrites the lease: the keeper must notice.
        collection.update_one({"_id": "timers"}, {"$set": {"owner": "rival", "expires_at": time.time() + 60}})
        assert lost.wait(2)
        assert not keeper.held
    finally:
        keeper.stop(release=False)


def test_failed_attempt_notes_when_the_rival_lease_expires(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    first, second = Lease(collection, "timers", "a", 60), Lease(collection, "timers", "b", 60)
    assert first.try_acquire()
    assert not second.try_acquire()
    holder = collection.find_one({"_id": "timers"})
    assert holder is not None
    assert second.rival_expires_at == pytest.approx(holder["expires_at"], abs=1e-3)


def test_standby_keeper_takes_over_at_the_rival_expiry_not_at_its_next_poll(mongo: EmbeddedMongo) -> None:
    collection = _leases(mongo)
    assert Lease(collection, "timers", "a", 0.5).try_acquire()
    acquired = threading.Event()
    # A poll interval far beyond the test's patience: only the expiry-timed attempt can win.
    keeper = LeaseKeeper(Lease(collection, "timers", "b", 5), acquired.set, lambda: None, 3600)
    keeper.start()
    try:
        assert acquired.wait(10)
    finally:
        keeper.stop(release=False)
