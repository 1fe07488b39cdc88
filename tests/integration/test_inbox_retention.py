"""The inbox's retention against the real store (nx-27017): processed-event rows
older than `inbox_retention_s` are deleted, newer ones kept, and a redelivery of
an event still retained is still a duplicate. Rows a service wrote before it
used mesh.inbox (chat_svc's `processed_at` rows) are adopted into retention."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mesh.config import MeshConfig
from mesh.inbox import Inbox
from mesh.store import Store
from tests.support.events import count_effect, effect_counts, ensure_collection, event, event_config
from tests.support.processes import EmbeddedMongo

RETENTION_S = 100.0


@pytest.fixture
def retention_config(mongo: EmbeddedMongo, isolation: dict[str, str]) -> MeshConfig:
    return event_config(mongo.url, isolation, inbox_retention_s=RETENTION_S, inbox_cleanup_interval_s=3600)


@pytest.fixture
def own_store(retention_config: MeshConfig) -> Iterator[Store]:
    store = Store(retention_config.mongo_url, retention_config.database)
    ensure_collection(store, "effects")
    yield store
    store.close()


def received_ago(store: Store, event_id: str, seconds: float) -> None:
    """Make a row look `seconds` old (what waiting that long would do)."""
    store.db["inbox"].update_one({"_id": event_id}, {"$set": {"received_at": time.time() - seconds}})


def test_rows_past_the_retention_are_deleted_and_newer_ones_kept(
    own_store: Store, retention_config: MeshConfig
) -> None:
    inbox = Inbox(own_store, retention_config)
    old, recent, fresh = event(1), event(2), event(3)
    for each in (old, recent, fresh):
        assert inbox.handle(each, count_effect)
    received_ago(own_store, old.id, RETENTION_S + 50)
    received_ago(own_store, recent.id, RETENTION_S - 50)

    assert inbox.cleanup() == 1

    assert not inbox.seen(old.id)
    assert inbox.seen(recent.id) and inbox.seen(fresh.id)
    assert inbox.cleanup() == 0  # nothing else is old enough


def test_a_redelivery_of_a_retained_event_is_still_a_duplicate(
    own_store: Store, retention_config: MeshConfig
) -> None:
    inbox = Inbox(own_store, retention_config)
    kept = event(4)
    assert inbox.handle(kept, count_effect)
    received_ago(own_store, kept.id, RETENTION_S - 1)
    inbox.cleanup()

    assert inbox.handle(kept, count_effect) is False
    assert inbox.handle_batch([kept, kept], count_effect)[0].applied is False
    assert effect_counts(own_store) == {kept.subject: 1}


def test_handling_events_runs_the_cleanup_on_its_own(own_store: Store, retention_config: MeshConfig) -> None:
    stale = event(5)
    assert Inbox(own_store, retention_config).handle(stale, count_effect)
    received_ago(own_store, stale.id, RETENTION_S + 1)

    # a replica's first event runs the cleanup (then every inbox_cleanup_interval_s)
    assert Inbox(own_store, retention_config).handle(event(6), count_effect)

    assert not Inbox(own_store, retention_config).seen(stale.id)


def test_legacy_rows_are_adopted_into_retention_once(own_store: Store, retention_config: MeshConfig) -> None:
    now = time.time()
    own_store.db["inbox"].insert_many(
        [
            {"_id": "legacy-old", "processed_at": now - RETENTION_S - 10},
            {"_id": "legacy-new", "processed_at": now - 10},
            {"_id": "legacy-untimed"},
        ]
    )
    inbox = Inbox(own_store, retention_config)

    assert inbox.adopt_legacy_rows("processed_at") == 3
    assert inbox.adopt_legacy_rows("processed_at") == 0  # idempotent
    rows = {row["_id"]: row for row in own_store.db["inbox"].find()}
    assert rows["legacy-new"]["received_at"] == pytest.approx(now - 10)
    assert "processed_at" not in rows["legacy-new"]

    assert inbox.cleanup() == 1
    assert not inbox.seen("legacy-old") and inbox.seen("legacy-new") and inbox.seen("legacy-untimed")
