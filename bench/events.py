"""Events benchmark: throughput from outbox write to consumer effect, and lag at
half that load, against two baselines measured in the same run: raw pika
publish+consume, and raw store writes (one single-document transaction per event).

    .venv/bin/python bench/events.py [--events 2000] [--writers 1] [--rabbitmq-url URL]

Writers commit one event per transaction, as services do (`--writers` of them
at once); the consumer applies deliveries through the inbox in batches
(`mesh.inbox.consume`'s path). Prints a table and writes .data/bench/events.json.
Starts its own embedded MongoDB (nx-27017) unless --mongo-url is given; uses
throwaway queue names.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pika
from google.protobuf.wrappers_pb2 import Int64Value
from pika.exceptions import ChannelClosedByBroker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mesh.bus import EventConsumer, Publisher, declare_topology  # noqa: E402
from mesh.config import MeshConfig  # noqa: E402
from mesh.events import Event, new_event  # noqa: E402
from mesh.inbox import Inbox  # noqa: E402
from mesh.outbox import Outbox, OutboxRelay  # noqa: E402
from mesh.store import Store, UnitOfWork  # noqa: E402
from tests.support.processes import EmbeddedMongo  # noqa: E402

EVENT_TYPE = "bench.happened.v1"


def raw_pika(url: str, count: int) -> float:
    """Persistent publishes to a quorum queue and a manual-ack consumer, plain pika."""
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    params = pika.URLParameters(url)
    consumer_conn = pika.BlockingConnection(params)
    channel = consumer_conn.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_qos(prefetch_count=32)
    body = new_event(EVENT_TYPE, "bench", "x", Int64Value(value=1)).SerializeToString()
    received = 0

    def on_message(ch: object, method: pika.spec.Basic.Deliver, _p: object, _b: bytes) -> None:
        nonlocal received
        channel.basic_ack(method.delivery_tag)
        received += 1

    def publish() -> None:
        connection = pika.BlockingConnection(params)
        out = connection.channel()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/x-protobuf")
        for _ in range(count):
            out.basic_publish("", queue, body, properties)
        connection.close()

    channel.basic_consume(queue, on_message)
    started = time.perf_counter()
    publisher = threading.Thread(target=publish)
    publisher.start()
    while received < count:
        consumer_conn.process_data_events(time_limit=0.1)
    elapsed = time.perf_counter() - started
    publisher.join()
    channel.queue_delete(queue)
    consumer_conn.close()
    return count / elapsed


class Pipeline:
    """Outbox writes -> relay -> consumer applying an effect through the inbox."""

    def __init__(self, config: MeshConfig, with_store: bool, writers: int = 1) -> None:
        self.config = config
        self.writers = writers
        self.lags: list[float] = []
        self.batches = 0
        self.done = threading.Event()
        self.expected = 0
        self._lock = threading.Lock()
        self.store = Store(config.mongo_url, config.database) if with_store else None
        self.consumer_store = Store(config.mongo_url, config.database + "_c") if with_store else None
        self.inbox = Inbox(self.consumer_store, config) if self.consumer_store else None
        if self.inbox is not None:
            self.consumer = EventConsumer(config, "bench", [EVENT_TYPE], handle_batch=self._handle_batch)
        else:
            self.consumer = EventConsumer(config, "bench", [EVENT_TYPE], self._handle)
        self.publisher = Publisher(config, name="bench")
        self.outbox = Outbox(self.store, config) if self.store else None
        self.relay = None
        if self.store is not None and self.outbox is not None:
            self.relay = OutboxRelay(self.store, self.outbox, self.publisher, config)

    def start(self) -> None:
        declare_topology(self.config, [self.consumer.topology])
        self.consumer.start_thread()
        self.consumer.wait_ready(10)
        if self.relay:
            self.relay.start_thread()
        else:
            self.publisher.start()
        self.publisher.wait_ready(10)

    def stop(self) -> None:
        if self.relay:
            self.relay.stop_thread()
        else:
            self.publisher.close()
        self.consumer.stop_thread()
        self._delete_topology()

    def _delete_topology(self) -> None:
        """Remove the throwaway queues and exchange: leaked quorum queues weigh on
        the shared broker."""
        topology = self.consumer.topology
        queues = [topology.queue, topology.dead_queue]
        queues += [topology.retry_queue(ms) for ms in sorted(set(topology.retry_delays_ms))]
        connection = pika.BlockingConnection(pika.URLParameters(self.config.rabbitmq_url))
        try:
            channel = connection.channel()
            for queue in queues:
                channel.queue_delete(queue)
            with contextlib.suppress(ChannelClosedByBroker):  # the other pipeline deleted it
                channel.exchange_delete(topology.exchange)
        finally:
            connection.close()

    def _handle(self, event: Event) -> None:
        self._applied([event])

    def _handle_batch(self, events: Sequence[Event]) -> list[Exception | None]:
        assert self.inbox is not None
        handled = self.inbox.handle_batch(events, _effect)
        self._applied([h.event for h in handled if h.applied])
        with self._lock:
            self.batches += 1
        return [h.error for h in handled]

    def _applied(self, events: list[Event]) -> None:
        now = time.time()
        with self._lock:
            self.lags.extend(now - event.time.ToNanoseconds() / 1e9 for event in events)
            if len(self.lags) >= self.expected:
                self.done.set()

    def run(self, count: int, rate: float | None = None) -> tuple[float, list[float]]:
        """Emit `count` events from `writers` threads (at `rate` per second in all
        when given); returns (events/s, lags)."""
        with self._lock:
            self.lags, self.expected, self.batches = [], count, 0
            self.done.clear()
        started = time.perf_counter()

        def write(first: int) -> None:
            for n in range(first, count, self.writers):
                if rate:
                    delay = started + n / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                self._emit(n)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(self.writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.done.wait(600)
        return count / (time.perf_counter() - started), list(self.lags)

    def _emit(self, n: int) -> None:
        event = new_event(EVENT_TYPE, "bench", f"n/{n}", Int64Value(value=n))
        if self.store is None or self.outbox is None:
            self.publisher.publish(event)
            return
        with self.store.unit_of_work() as uow:
            self.outbox.add(uow, event)
            uow.commit()


def raw_store(mongo_url: str, database: str, count: int, writers: int) -> float:
    """Baseline for the store side: `writers` threads commit one single-document
    transaction per event (what a writer pays before any outbox or broker)."""
    store = Store(mongo_url, database)
    store.db["raw_writes"].insert_one({"_id": "warm-up"})  # created outside any transaction
    started = time.perf_counter()

    def write(first: int) -> None:
        for n in range(first, count, writers):
            with store.unit_of_work() as uow:
                uow.db["raw_writes"].insert_one({"_id": n}, session=uow.session)
                uow.commit()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = count / (time.perf_counter() - started)
    store.close()
    return rate


def _effect(uow: UnitOfWork, event: Event) -> None:
    uow.db["effects"].insert_one({"_id": event.id}, session=uow.session)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=1, help="concurrent writer threads")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--mongo-url", default="")
    parser.add_argument("--out", default=str(ROOT / ".data/bench/events.json"))
    args = parser.parse_args()

    mongo = None
    mongo_url = args.mongo_url
    if not mongo_url:
        mongo = EmbeddedMongo(Path(tempfile.mkdtemp(prefix="bench-mongo-"))).start()
        mongo_url = mongo.url
    tag = f"bench_{uuid.uuid4().hex[:8]}"
    config = MeshConfig(
        service_name="bench",
        mongo_url=mongo_url,
        mongo_db=tag,
        rabbitmq_url=args.rabbitmq_url,
        events_exchange=f"{tag}.events",
        queue_prefix=f"{tag}.",
    )
    results: dict[str, object] = {"events": args.events, "writers": args.writers}
    try:
        raw = raw_pika(args.rabbitmq_url, args.events)
        store_rate = raw_store(mongo_url, f"{tag}_raw", args.events, args.writers)
        bus = Pipeline(config.model_copy(update={"queue_prefix": f"{tag}.bus."}), with_store=False)
        bus.start()
        bus_rate, _ = bus.run(args.events)
        bus.stop()
        full = Pipeline(config, with_store=True, writers=args.writers)
        full.start()
        full_rate, full_lags = full.run(args.events)
        full_batches = full.batches
        half_rate, half_lags = full.run(max(args.events // 2, 100), rate=full_rate / 2)
        full.stop()
    finally:
        if mongo is not None:
            mongo.stop()

    rows = [
        ("raw pika publish+consume", raw, None),
        ("raw store: one-document transaction per event", store_rate, None),
        ("mesh bus (Publisher confirms + EventConsumer)", bus_rate, None),
        ("outbox write -> relay -> consumer + inbox", full_rate, full_lags),
        (f"same at half load ({full_rate / 2:.0f}/s)", half_rate, half_lags),
    ]
    print(f"{'path':<52} {'events/s':>9} {'vs raw':>7} {'vs store':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, lags in rows:
        p50 = percentile(lags, 50) * 1000 if lags else float("nan")
        p99 = percentile(lags, 99) * 1000 if lags else float("nan")
        print(f"{name:<52} {rate:>9.0f} {rate / raw:>7.2f} {rate / store_rate:>9.2f} {p50:>8.1f} {p99:>8.1f}")
    results.update(
        raw_per_s=raw,
        bus_per_s=bus_rate,
        bus_ratio=bus_rate / raw,
        outbox_per_s=full_rate,
        outbox_ratio=full_rate / raw,
        raw_store_per_s=store_rate,
        outbox_ratio_to_store=full_rate / store_rate,
        outbox_lag_p50_ms=percentile(full_lags, 50) * 1000,
        outbox_lag_p99_ms=percentile(full_lags, 99) * 1000,
        consumer_mean_batch=args.events / full_batches if full_batches else None,
        half_load_per_s=half_rate,
        half_load_lag_p50_ms=percentile(half_lags, 50) * 1000,
        half_load_lag_p99_ms=percentile(half_lags, 99) * 1000,
        half_load_lag_mean_ms=statistics.fmean(half_lags) * 1000 if half_lags else None,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if full_batches:
        print(f"consumer: {full_batches} inbox transactions, {args.events / full_batches:.1f} events each")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
