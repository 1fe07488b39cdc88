"""The event bus in one process against the real RabbitMQ and the embedded
MongoDB: retries and parking, failing publishes, the admin service, and
reconnection after the broker drops every connection."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from prometheus_client import REGISTRY
from switchboard.admin.v1 import event_admin_pb2 as admin_pb

from mesh.admin import EventAdminService
from mesh.bus import DeadLetters, Publisher, declare_topology
from mesh.config import MeshConfig
from mesh.outbox import FAILED, Outbox, OutboxRelay
from mesh.processes import wait_until
from mesh.store import Store
from tests.support.events import Recorder, event


def write_events(store: Store, outbox: Outbox, numbers: range, batch: int = 20) -> None:
    for first in range(numbers.start, numbers.stop, batch):
        with store.unit_of_work() as uow:
            for n in range(first, min(first + batch, numbers.stop)):
                outbox.add(uow, event(n))
            uow.commit()


async def test_poison_event_is_retried_with_delay_then_parked_while_others_flow(
    config: MeshConfig,
) -> None:
    healed = threading.Event()
    recorder = Recorder(config, fails=lambda e: e.subject == "poison" and not healed.is_set()).start()
    publisher = Publisher(config).start()
    try:
        assert publisher.wait_ready(10)
        started = time.monotonic()
        publisher.publish(event(0, "poison")).result(10)
        for future in [publisher.publish(event(n)) for n in range(1, 51)]:
            future.result(10)
        dead = DeadLetters(config)
        assert wait_until(lambda: len(dead.peek(recorder.consumer.queue, 10)) == 1, 20, 0.2)
        assert wait_until(lambda: len(recorder.subjects()) == 50, 20)
        poison_deliveries = [e for e in recorder.deliveries if e.subject == "poison"]
        assert len(poison_deliveries) == config.bus_max_attempts
        assert time.monotonic() - started >= sum(config.bus_retry_delays_ms) / 1000

        admin = EventAdminService(config, None, [recorder.consumer.queue])
        listed = await admin.ListDeadLetters(admin_pb.ListDeadLettersRequest(), None)  # type: ignore[arg-type]
        again = await admin.ListDeadLetters(admin_pb.ListDeadLettersRequest(), None)  # type: ignore[arg-type]
        assert [d.message_id for d in listed.dead_letters] == [poison_deliveries[0].id]
        assert [d.message_id for d in again.dead_letters] == [poison_deliveries[0].id]
        assert "poison" in listed.dead_letters[0].death_reason
        assert listed.dead_letters[0].death_count == config.bus_max_attempts

        healed.set()
        replayed = await admin.ReplayDeadLetters(
            admin_pb.ReplayDeadLettersRequest(queue=recorder.consumer.queue),
            None,  # type: ignore[arg-type]
        )
        assert replayed.replayed_count == 1
        assert wait_until(lambda: "poison" in recorder.subjects(), 10)
        assert dead.peek(recorder.consumer.queue, 10) == []
    finally:
        publisher.close()
        recorder.stop()


async def test_publish_that_keeps_failing_is_marked_failed_listed_and_replayed(
    config: MeshConfig, store: Store
) -> None:
    config = config.model_copy(update={"outbox_max_attempts": 3, "outbox_sweep_interval_s": 0.1})
    outbox = Outbox(store, config)
    # the exchange does not exist yet: every publish is refused by the broker
    relay = OutboxRelay(store, outbox, Publisher(config, declare=False), config).start_thread()
    recorder: Recorder | None = None
    try:
        write_events(store, outbox, range(1))
        assert wait_until(lambda: store.db.outbox.count_documents({"status": FAILED}) == 1, 20)
        row = store.db.outbox.find_one({})
        assert row is not None and row["attempts"] == 3 and "NOT_FOUND" in row["last_error"]

        admin = EventAdminService(config, outbox, [])
        listed = await admin.ListOutboxMessages(
            admin_pb.ListOutboxMessagesRequest(status=admin_pb.OUTBOX_STATUS_FAILED),
            None,  # type: ignore[arg-type]
        )
        assert [m.id for m in listed.outbox_messages] == [row["_id"]]
        assert listed.outbox_messages[0].attempts == 3

        recorder = Recorder(config).start()  # declares the exchange and its queue
        replayed = await admin.ReplayOutboxMessages(
            admin_pb.ReplayOutboxMessagesRequest(all_failed=True),
            None,  # type: ignore[arg-type]
        )
        assert replayed.replayed_count == 1
        assert wait_until(lambda: recorder is not None and recorder.subjects() == {"n/0"}, 15)
    finally:
        relay.stop_thread()
        if recorder is not None:
            recorder.stop()


def _broker_disruption(command: list[list[str]]) -> None:
    node = os.environ.get("RABBITMQ_NODENAME")  # a broker other than the default node
    for argv in command:
        subprocess.run(
            ["rabbitmqctl", *(["-n", node] if node else []), *argv],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "disruption",
    [
        [["close_all_connections", "events test"]],
        [["stop_app"], ["start_app"]],
    ],
    ids=["close_all_connections", "stop_app-start_app"],
)
def test_nothing_is_lost_when_the_broker_drops_every_connection(
    config: MeshConfig, store: Store, disruption: list[list[str]]
) -> None:
    total = 300
    outbox = Outbox(store, config)
    recorder = Recorder(config).start()
    relay = OutboxRelay(store, outbox, Publisher(config), config).start_thread()
    writer = threading.Thread(target=write_events, args=(store, outbox, range(total), 5))
    try:
        assert relay.publisher.wait_ready(10)
        writer.start()
        assert wait_until(lambda: len(recorder.subjects()) >= 100, 30)
        _broker_disruption(disruption)
        writer.join(60)
        assert wait_until(lambda: len(recorder.subjects()) == total, 90, 0.2), (
            f"{len(recorder.subjects())} of {total} applied"
        )
        assert wait_until(lambda: relay.healthy() and recorder.consumer.healthy(), 10)
        assert set(recorder.effect_counts().values()) == {1}
    finally:
        relay.stop_thread()
        recorder.stop()


def test_declare_topology_is_idempotent(config: MeshConfig) -> None:
    recorder = Recorder(config)
    declare_topology(config, [recorder.consumer.topology])
    declare_topology(config, [recorder.consumer.topology])
    assert DeadLetters(config).peek(recorder.consumer.queue, 1) == []
    recorder.store.close()


def test_cleanup_deletes_published_rows_past_retention_and_gauges_pending_and_failed(
    config: MeshConfig, store: Store
) -> None:
    config = config.model_copy(update={"outbox_retention_s": 3600})
    outbox = Outbox(store, config)
    outbox.ensure_indexes()
    old, recent = time.time() - 7200, time.time() - 60
    rows = [("PUBLISHED", old)] * 4 + [("PUBLISHED", recent)] * 2 + [("PENDING", old)] * 3 + [(FAILED, old)]
    store.db.outbox.insert_many(
        [{"_id": f"r{i}", "status": s, "created_at": t, "updated_at": t} for i, (s, t) in enumerate(rows)]
    )
    OutboxRelay(store, outbox, Publisher(config, declare=False), config).cleanup()
    kept = sorted((row["status"], row["updated_at"]) for row in store.db.outbox.find({}))
    assert kept == sorted([("PUBLISHED", recent)] * 2 + [("PENDING", old)] * 3 + [(FAILED, old)])
    assert REGISTRY.get_sample_value("outbox_pending") == 3
    assert REGISTRY.get_sample_value("outbox_failed") == 1


def test_rows_confirmed_in_separate_rounds_are_marked_published_with_one_write(
    config: MeshConfig, store: Store
) -> None:
    # the test config's 3 s lease would let the sweep publish them again: mark well within it
    config = config.model_copy(update={"outbox_mark_interval_s": 25.0, "outbox_claim_ttl_s": 30.0})
    outbox = Outbox(store, config)
    recorder = Recorder(config).start()  # declares the exchange and its queue
    relay = OutboxRelay(store, outbox, Publisher(config), config).start_thread()
    try:
        for n in range(3):  # three transactions, each handed to the relay on its own
            write_events(store, outbox, range(n, n + 1))
            assert wait_until(lambda n=n: f"n/{n}" in recorder.subjects(), 10)
        # delivered, but not marked yet: still leased to this relay, so no other takes them
        assert {row["status"] for row in store.db.outbox.find({})} == {"PENDING"}
        assert {row["claim_owner"] for row in store.db.outbox.find({})} == {relay.owner}
    finally:
        relay.stop_thread()  # marks what it confirmed before it stops
        recorder.stop()
    assert len(recorder.deliveries) == 3  # each published once: none swept again while unmarked
    rows = list(store.db.outbox.find({}))
    assert {row["status"] for row in rows} == {"PUBLISHED"}
    assert len({row["published_at"] for row in rows}) == 1
