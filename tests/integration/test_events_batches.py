"""Consumers apply a batch of deliveries in one inbox transaction: against the
embedded MongoDB (the inbox alone) and the real RabbitMQ (the consumer). A batch
that fails is applied one by one, so duplicates are still skipped and a poison
event still takes the retry and parking path alone."""

from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError

from mesh.bus import DeadLetters, Publisher, declare_topology
from mesh.config import MeshConfig
from mesh.events import Event
from mesh.inbox import Inbox
from mesh.processes import wait_until
from mesh.store import Store, UnitOfWork
from tests.support.events import Recorder, count_effect, effect_counts, event


@pytest.fixture
def inbox(store: Store, config: MeshConfig) -> Inbox:
    return Inbox(store, config)


# ------------------------------------------------------------------ the inbox


def test_a_batch_applies_each_new_event_once_and_skips_processed_ones(store: Store, inbox: Inbox) -> None:
    processed, fresh, again = event(0), event(1), event(2)
    assert inbox.handle(processed, count_effect)

    handled = inbox.handle_batch([processed, fresh, again, fresh], count_effect)

    assert [(h.event.subject, h.applied, h.error) for h in handled] == [
        ("n/0", False, None),
        ("n/1", True, None),
        ("n/2", True, None),
        ("n/1", False, None),  # a second copy in the same batch
    ]
    assert effect_counts(store) == {"n/0": 1, "n/1": 1, "n/2": 1}


def test_a_failing_effect_fails_only_its_event_and_the_rest_of_the_batch_commits(
    store: Store, inbox: Inbox
) -> None:
    def effect(uow: UnitOfWork, event: Event) -> None:
        if event.subject == "poison":
            raise RuntimeError("cannot apply")
        count_effect(uow, event)

    handled = inbox.handle_batch([event(0), event(1, "poison"), event(2)], effect)

    assert [h.applied for h in handled] == [True, False, True]
    assert isinstance(handled[1].error, RuntimeError)
    assert effect_counts(store) == {"n/0": 1, "n/2": 1}
    assert not inbox.seen(handled[1].event.id), "the failed event must stay unprocessed for its retry"


def test_an_event_recorded_by_another_replica_during_a_batch_is_skipped_and_the_rest_applied(
    store: Store, inbox: Inbox
) -> None:
    first, second = event(0), event(1)

    def effect(uow: UnitOfWork, applied: Event) -> None:
        # stands for a replica that records `second` after the batch's check: the
        # batch transaction hits its id and fails, and the fallback must keep `first`
        if applied.id == first.id:
            uow.db[inbox.collection_name].insert_one({"_id": second.id}, session=uow.session)
        count_effect(uow, applied)

    handled = inbox.handle_batch([first, second], effect)

    assert [(h.applied, h.error) for h in handled] == [(True, None), (False, None)]
    assert effect_counts(store) == {"n/0": 1}


def test_a_duplicate_key_error_from_an_effect_is_a_failure_not_a_duplicate_event(
    store: Store, inbox: Inbox
) -> None:
    store.db["effects"].insert_one({"_id": "taken"})

    def effect(uow: UnitOfWork, _event: Event) -> None:
        uow.db["effects"].insert_one({"_id": "taken"}, session=uow.session)

    failing = event(0)
    with pytest.raises(DuplicateKeyError):
        inbox.handle(failing, effect)
    assert not inbox.seen(failing.id)


# --------------------------------------------------------------- the consumer


def publish_all(config: MeshConfig, events: list[Event]) -> None:
    publisher = Publisher(config).start()
    try:
        assert publisher.wait_ready(10)
        for future in [publisher.publish(e) for e in events]:
            future.result(10)
    finally:
        publisher.close()


def test_a_backlog_is_applied_in_batches_exactly_once(config: MeshConfig) -> None:
    recorder = Recorder(config)
    declare_topology(config, [recorder.consumer.topology])
    publish_all(config, [event(n) for n in range(200)])  # waiting before the consumer starts
    recorder.start()
    try:
        assert wait_until(lambda: len(recorder.subjects()) == 200, 30)
        assert set(recorder.effect_counts().values()) == {1}
        assert max(recorder.batches) > 1, "the backlog should arrive in batches"
        assert max(recorder.batches) <= config.bus_batch_max
        # at least once: a batch whose outcome was lost (a store time-out under load)
        # comes back through the retry queue, and the inbox skips it (counts above)
        assert len(recorder.deliveries) >= 200
    finally:
        recorder.stop()


def test_copies_of_one_event_delivered_together_are_applied_once(config: MeshConfig) -> None:
    recorder = Recorder(config)
    declare_topology(config, [recorder.consumer.topology])
    twice = event(0)
    publish_all(config, [twice, event(1), twice, event(2), twice])
    recorder.start()
    try:
        assert wait_until(lambda: len(recorder.deliveries) == 5, 20)
        assert max(recorder.batches) >= 2, "published before the consumer started: they come in batches"
        assert wait_until(lambda: recorder.subjects() == {"n/0", "n/1", "n/2"}, 10)
        assert recorder.effect_counts() == {"n/0": 1, "n/1": 1, "n/2": 1}
    finally:
        recorder.stop()


def test_a_poison_event_in_a_batch_is_parked_while_the_rest_of_its_batch_is_applied(
    config: MeshConfig,
) -> None:
    recorder = Recorder(config, fails=lambda e: e.subject == "poison")
    declare_topology(config, [recorder.consumer.topology])
    poison = event(0, "poison")
    publish_all(config, [event(1), poison, *(event(n) for n in range(2, 30))])
    recorder.start()
    try:
        assert wait_until(lambda: len(recorder.subjects()) == 29, 20)
        dead = DeadLetters(config)
        assert wait_until(lambda: len(dead.peek(recorder.consumer.queue, 10)) == 1, 20, 0.2)
        assert [d.message_id for d in dead.peek(recorder.consumer.queue, 10)] == [poison.id]
        assert [e.id for e in recorder.deliveries].count(poison.id) == config.bus_max_attempts
        assert "poison" not in recorder.subjects()
        assert set(recorder.effect_counts().values()) == {1}
    finally:
        recorder.stop()
