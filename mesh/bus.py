"""RabbitMQ through pika, used as pika must be with threads: every publisher and
consumer owns one connection in its own thread, and nothing here blocks the
asyncio loop.

Topology: one durable topic exchange (`events_exchange`); per consumer a durable
quorum queue `<queue_prefix><name>` bound by event-type patterns, delay queues
`<queue>.retry.<ms>` (message TTL, then dead-lettered back to the queue through
the default exchange) and a parking queue `<queue>.dead`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel
from pika.exceptions import AMQPError, ChannelClosedByBroker
from pika.spec import Basic, BasicProperties

from mesh.config import MeshConfig
from mesh.events import CONTENT_TYPE, Event, EventDecodeError, from_bytes, to_bytes, traced

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-attempts"
ERROR_HEADER = "x-error"
FAILED_AT_HEADER = "x-failed-at-ms"  # epoch milliseconds (AMQP tables have no float in pika)
QUEUE_HEADER = "x-queue"
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
DEAD_SUFFIX = ".dead"


class BrokerUnavailable(ConnectionError):
    """Not connected, or the connection dropped before the broker confirmed."""


class PublishRejected(Exception):
    """The broker refused the message: a nack, or the channel closed by the
    broker (e.g. the exchange does not exist or is not permitted)."""


def broker_urls(rabbitmq_url: str) -> list[str]:
    """RABBITMQ_URL names one broker, or the nodes of a cluster separated by commas."""
    urls = [url.strip() for url in rabbitmq_url.split(",") if url.strip()]
    if not urls:
        raise ValueError("RABBITMQ_URL names no broker")
    return urls


def connection_parameters(config: MeshConfig, connection_name: str) -> list[pika.URLParameters]:
    """One entry per cluster node, for `pika.BlockingConnection`, which tries them in
    order: each connection starts at a random node (so replicas spread over the
    cluster) and falls over to the next when that node is down."""
    urls = broker_urls(config.rabbitmq_url)
    first = random.randrange(len(urls))
    candidates = []
    for url in urls[first:] + urls[:first]:
        params = pika.URLParameters(url)
        params.heartbeat = config.bus_heartbeat_s
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = max(config.bus_publish_timeout_s, 1.0)
        params.client_properties = {"connection_name": f"{config.service_name}:{connection_name}"}
        candidates.append(params)
    return candidates


def event_properties(event: Event, headers: dict[str, Any] | None = None) -> BasicProperties:
    """AMQP properties of an event: persistent, protobuf, message_id = id, type = type."""
    trace = {TRACEPARENT_HEADER: event.trace.traceparent}
    if event.trace.tracestate:
        trace[TRACESTATE_HEADER] = event.trace.tracestate
    return BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=2,
        message_id=event.id,
        type=event.type,
        app_id=event.source or None,
        timestamp=event.time.seconds or None,
        headers={**trace, **(headers or {})},
    )


class Backoff:
    """Exponential reconnect delay: 0.1 s doubling up to `max_s`, reset on success."""

    def __init__(self, max_s: float, first_s: float = 0.1) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.first_s


# --------------------------------------------------------------------- topology


@dataclass(frozen=True)
class ConsumerTopology:
    """The queues of one consumer: the queue itself, its bindings, delay queues and
    its parking queue. `exchange` empty means a work queue fed through the
    default exchange (no bindings)."""

    queue: str
    exchange: str
    patterns: tuple[str, ...] = ()
    retry_delays_ms: tuple[int, ...] = (200, 1000, 5000, 15000)

    @property
    def dead_queue(self) -> str:
        return self.queue + DEAD_SUFFIX

    def retry_queue(self, delay_ms: int) -> str:
        return f"{self.queue}.retry.{delay_ms}"

    def delay_for(self, failures: int) -> int:
        """The delay before attempt `failures + 1` (the last delay repeats)."""
        return self.retry_delays_ms[min(failures, len(self.retry_delays_ms)) - 1]

    def declare(self, channel: BlockingChannel) -> None:
        quorum = {"x-queue-type": "quorum"}
        channel.queue_declare(self.queue, durable=True, arguments=quorum)
        if self.exchange:
            declare_exchange(channel, self.exchange)
            for pattern in self.patterns:
                channel.queue_bind(self.queue, self.exchange, routing_key=pattern)
        for delay_ms in sorted(set(self.retry_delays_ms)):
            channel.queue_declare(
                self.retry_queue(delay_ms),
                durable=True,
                arguments={
                    **quorum,
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.queue,
                    # quorum queues dead-letter with confirms only in this mode
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        channel.queue_declare(self.dead_queue, durable=True, arguments=quorum)


def declare_exchange(channel: BlockingChannel, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)


def declare_topology(
    config: MeshConfig,
    consumers: Sequence[ConsumerTopology] = (),
    *,
    exchange: str | None = None,
    channel: BlockingChannel | None = None,
) -> None:
    """Declare the events exchange (or `exchange`) and each consumer's queues;
    idempotent. Opens a short-lived connection unless given a channel."""
    if channel is None:
        connection = pika.BlockingConnection(connection_parameters(config, "topology"))
        try:
            declare_topology(config, consumers, exchange=exchange, channel=connection.channel())
        finally:
            _close_quietly(connection)
        return
    declare_exchange(channel, exchange if exchange is not None else config.events_exchange)
    for consumer in consumers:
        consumer.declare(channel)


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except (AMQPError, OSError):
        pass


# -------------------------------------------------------------------- publisher


@dataclass
class _Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    properties: BasicProperties
    future: Future[None] = field(default_factory=Future)


class Publisher:
    """Publishes with confirms from its own thread and connection (pika's
    SelectConnection, so many messages are in flight at once). `publish()` is
    thread-safe and returns a Future resolved when the broker confirms; it fails
    with BrokerUnavailable while disconnected (never queues blindly) and with
    PublishRejected on a nack or a channel error. Reconnects with backoff."""

    def __init__(
        self,
        config: MeshConfig,
        name: str = "publisher",
        *,
        declare: bool = True,
        consumers: Sequence[ConsumerTopology] = (),
    ) -> None:
        self.config = config
        self.name = name
        self._params = connection_parameters(config, name)
        self._node = 0  # which of the cluster's nodes the next connection attempt tries
        self._renewing = False  # our own close of the channel, to open a fresh one
        self._declare = declare
        self._consumers = tuple(consumers)
        self._lock = threading.Lock()
        self._pending: deque[_Outgoing] = deque()
        self._drain_scheduled = False
        self._unconfirmed: dict[int, Future[None]] = {}
        self._delivery_tag = 0
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_ready: list[Callable[[], None]] = []

    # public API -------------------------------------------------------------

    def start(self) -> Publisher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"bus-{self.name}", daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def healthy(self) -> bool:
        return self._ready.is_set()

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the publisher thread; keep it cheap) after every (re)connect."""
        self._on_ready.append(callback)

    def publish(
        self, event: Event, *, exchange: str | None = None, routing_key: str | None = None
    ) -> Future[None]:
        """Publish an event to the events exchange (routing key = its type), or to
        `exchange`/`routing_key` (e.g. "" and a work queue's name)."""
        return self.publish_message(
            self.config.events_exchange if exchange is None else exchange,
            event.type if routing_key is None else routing_key,
            to_bytes(event),
            event_properties(event),
        )

    def publish_message(
        self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties
    ) -> Future[None]:
        outgoing = _Outgoing(exchange, routing_key, body, properties)
        connection = self._connection
        if not self._ready.is_set() or connection is None:
            outgoing.future.set_exception(BrokerUnavailable(f"{self.name}: not connected"))
            return outgoing.future
        with self._lock:
            self._pending.append(outgoing)
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            try:
                connection.ioloop.add_callback_threadsafe(self._drain)
            except Exception:  # the loop closed under us: the next connect drains
                log.debug("publisher loop closed while scheduling", exc_info=True)
        return outgoing.future

    def close(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.ioloop.add_callback_threadsafe(self._close_connection)
            except Exception:
                log.debug("publisher loop already closed", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._fail_everything(BrokerUnavailable(f"{self.name}: closed"))

    # the publisher thread -----------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(self.config.bus_reconnect_max_s)
        while not self._stopping.is_set():
            try:
                if self._declare or self._consumers:
                    declare_topology(self.config, self._consumers)
                # SelectConnection takes one node: each attempt tries the next one of the list.
                params = self._params[self._node % len(self._params)]
                self._node += 1
                connection = pika.SelectConnection(
                    params,
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_error,
                    on_close_callback=self._on_connection_closed,
                )
                self._connection = connection
                connection.ioloop.start()
            except Exception as exc:  # pika's connector errors are not all AMQPError
                log.warning("publisher %s cannot connect: %r", self.name, exc)
            self._ready.clear()
            self._fail_everything(BrokerUnavailable(f"{self.name}: connection lost"))
            if self._delivery_tag:  # had connected: start the backoff afresh
                backoff.reset()
                self._delivery_tag = 0
            self._stopping.wait(backoff.next())

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        log.warning("publisher %s cannot connect: %s", self.name, error)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        self._ready.clear()
        self._channel = None
        if not self._stopping.is_set():
            log.warning("publisher %s lost its connection: %s", self.name, reason)
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirm_mode(channel))

    def _on_confirm_mode(self, channel: Channel) -> None:
        self._delivery_tag = 0
        self._ready.set()
        log.info("publisher %s connected", self.name)
        self._drain()
        for callback in self._on_ready:
            try:
                callback()
            except Exception:
                log.exception("publisher on_ready callback failed")

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        self._ready.clear()
        self._channel = None
        by_broker = isinstance(reason, ChannelClosedByBroker)
        if by_broker:
            log.warning("publisher %s channel closed by broker: %s", self.name, reason)
        self._fail_unconfirmed(PublishRejected(str(reason)) if by_broker else BrokerUnavailable(str(reason)))
        reopen, self._renewing = by_broker or self._renewing, False
        connection = self._connection
        if reopen and connection is not None and connection.is_open and not self._stopping.is_set():
            connection.channel(on_open_callback=self._on_channel_open)

    def _drain(self) -> None:
        with self._lock:
            self._drain_scheduled = False
            batch = list(self._pending)
            self._pending.clear()
        channel = self._channel
        for item in batch:
            if channel is None or not channel.is_open or not self._ready.is_set():
                _fail(item.future, BrokerUnavailable(f"{self.name}: channel closed"))
                continue
            try:
                channel.basic_publish(item.exchange, item.routing_key, item.body, item.properties)
            except Exception as exc:
                _fail(item.future, BrokerUnavailable(f"{self.name}: {exc}"))
                continue
            self._delivery_tag += 1
            self._unconfirmed[self._delivery_tag] = item.future

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tags = [method.delivery_tag]
        if method.multiple:
            tags = [tag for tag in self._unconfirmed if tag <= method.delivery_tag]
        for tag in tags:
            future = self._unconfirmed.pop(tag, None)
            if future is None or future.done():
                continue
            if acked:
                future.set_result(None)
            else:
                future.set_exception(PublishRejected("the broker nacked the message"))
        if not acked:
            self._renew_channel()

    def _renew_channel(self) -> None:
        """After a nack, publish on a fresh channel. Measured on a 3-node cluster
        (RabbitMQ 3.10): once a quorum queue's leader is killed, the channel that had
        published to it nacks every later message (40 s and counting) while a new
        channel is confirmed at once; the outbox would otherwise mark rows FAILED."""
        channel = self._channel
        if channel is None or not channel.is_open or self._stopping.is_set():
            return
        self._renewing = True
        self._ready.clear()
        channel.close()

    def _fail_unconfirmed(self, error: BaseException) -> None:
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        for future in unconfirmed.values():
            _fail(future, error)

    def _fail_everything(self, error: BaseException) -> None:
        self._fail_unconfirmed(error)
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            self._drain_scheduled = False
        for item in pending:
            _fail(item.future, error)

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            connection.close()


def _fail(future: Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


# --------------------------------------------------------------------- consumer

Handler = Callable[[Event], None]
BatchHandler = Callable[[Sequence[Event]], Sequence[BaseException | None]]
"""Handles several deliveries at once. Returns, in the same order, None for each
event it handled (or skipped as already handled) and the exception of each event
that failed: the consumer retries those, then parks them."""


def one_by_one(handle: Handler) -> BatchHandler:
    """A batch handler that calls `handle(event)` for each event in turn, in the
    event's trace context; an exception fails that event only."""

    def handle_batch(events: Sequence[Event]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for event in events:
            with traced(event):
                try:
                    handle(event)
                except Exception as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
        return outcomes

    return handle_batch


@dataclass(frozen=True)
class _Delivery:
    tag: int
    properties: BasicProperties
    body: bytes


class EventConsumer:
    """A Worker that consumes one queue in its own thread with its own connection:
    manual acks, prefetch from config. Deliveries are handled in batches: what
    arrived together (up to `bus_batch_max`, waiting at most `bus_batch_wait_ms`
    for more) goes to `handle_batch(events)` at once, or to `handle(event)` one by
    one, on the consumer thread; the batch is acked with one multiple ack after
    its outcomes are settled. An event that failed is retried through the delay
    queues (attempt count in the `x-attempts` header); after `bus_max_attempts` it
    is parked in `<queue>.dead` with the error in `x-error`. A body that is not an
    Event is parked at once. Reconnects with backoff."""

    def __init__(
        self,
        config: MeshConfig,
        name: str,
        patterns: Sequence[str],
        handle: Handler | None = None,
        *,
        handle_batch: BatchHandler | None = None,
        queue: str | None = None,
        prefetch: int | None = None,
        exchange: str | None = None,
        batch_max: int | None = None,
    ) -> None:
        if handle is not None and handle_batch is not None:
            raise ValueError("give handle or handle_batch, not both")
        if handle is not None:
            handle_batch = one_by_one(handle)
        if handle_batch is None:
            raise ValueError("give handle or handle_batch")
        self.config = config
        self.name = f"consumer:{name}"
        self.topology = ConsumerTopology(
            queue=queue or f"{config.queue_prefix}{name}",
            exchange=config.events_exchange if exchange is None else exchange,
            patterns=tuple(patterns),
            retry_delays_ms=tuple(config.bus_retry_delays_ms),
        )
        self._handle_batch = handle_batch
        self._prefetch = prefetch or config.bus_prefetch
        # a batch never waits for deliveries the broker cannot send before it is acked
        self._batch_max = min(batch_max or config.bus_batch_max, self._prefetch)
        self._batch_wait_s = config.bus_batch_wait_ms / 1000
        self._max_attempts = config.bus_max_attempts
        self._deliveries: list[_Delivery] = []
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def queue(self) -> str:
        return self.topology.queue

    @property
    def dead_queue(self) -> str:
        return self.topology.dead_queue

    def healthy(self) -> bool:
        return self._connected.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    async def start(self) -> None:
        self.start_thread()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_thread)

    def start_thread(self) -> EventConsumer:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop_thread(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        backoff = Backoff(self.config.bus_reconnect_max_s)
        while not self._stopping.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(connection_parameters(self.config, self.name))
                channel = connection.channel()
                self.topology.declare(channel)
                channel.confirm_delivery()  # retries and parking wait for the broker's confirm
                channel.basic_qos(prefetch_count=self._prefetch)
                channel.basic_consume(self.queue, self._on_message)
                self._connected.set()
                backoff.reset()
                log.info("consumer %s connected", self.queue)
                while not self._stopping.is_set():
                    connection.process_data_events(time_limit=0.2)
                    if self._deliveries:
                        self._fill_batch(connection)
                        self._dispatch(channel)
            except Exception as exc:  # pika's connector errors are not all AMQPError
                if not self._stopping.is_set():
                    log.warning("consumer %s lost its connection: %r", self.queue, exc)
            finally:
                self._connected.clear()
                self._deliveries.clear()  # never acked: the broker delivers them again
                if connection is not None:
                    _close_quietly(connection)
            self._stopping.wait(backoff.next())

    def _on_message(
        self, _channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        # pika calls this only from process_data_events: collect, the run loop dispatches
        self._deliveries.append(_Delivery(method.delivery_tag, properties, body))

    def _fill_batch(self, connection: pika.BlockingConnection) -> None:
        deadline = time.monotonic() + self._batch_wait_s
        while len(self._deliveries) < self._batch_max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            connection.process_data_events(time_limit=remaining)

    def _dispatch(self, channel: BlockingChannel) -> None:
        while self._deliveries and not self._stopping.is_set():
            batch = self._deliveries[: self._batch_max]
            del self._deliveries[: self._batch_max]
            self._settle(channel, batch)

    def _settle(self, channel: BlockingChannel, batch: list[_Delivery]) -> None:
        """Handle a batch, retry or park what failed, then ack the whole batch."""
        decoded: list[tuple[_Delivery, Event]] = []
        for delivery in batch:
            try:
                decoded.append((delivery, from_bytes(delivery.body)))
            except EventDecodeError as exc:
                self._park(channel, delivery, int(_headers(delivery).get(ATTEMPTS_HEADER, 0)), str(exc))
        outcomes = self._outcomes([event for _, event in decoded])
        for (delivery, event), error in zip(decoded, outcomes, strict=True):
            if error is not None:
                self._failed(channel, delivery, event, error)
        channel.basic_ack(batch[-1].tag, multiple=True)

    def _outcomes(self, events: list[Event]) -> list[BaseException | None]:
        if not events:
            return []
        try:
            outcomes = list(self._handle_batch(events))
        except Exception as exc:  # a handler that broke its contract fails the whole batch
            log.exception("consumer %s: batch handler raised", self.queue)
            return [exc] * len(events)
        if len(outcomes) != len(events):
            error = RuntimeError(f"batch handler answered {len(outcomes)} outcomes for {len(events)} events")
            return [error] * len(events)
        return outcomes

    def _failed(
        self, channel: BlockingChannel, delivery: _Delivery, event: Event, exc: BaseException
    ) -> None:
        failures = int(_headers(delivery).get(ATTEMPTS_HEADER, 0)) + 1
        error = f"{type(exc).__name__}: {exc}"
        with traced(event):
            log.warning("consumer %s: %s failed (attempt %d): %s", self.queue, event.id, failures, error)
        if failures >= self._max_attempts:
            self._park(channel, delivery, failures, error)
        else:
            self._retry(channel, delivery, failures, error)

    def _retry(self, channel: BlockingChannel, delivery: _Delivery, failures: int, error: str) -> None:
        delay_ms = self.topology.delay_for(failures)
        properties = delivery.properties
        properties.headers = {**_headers(delivery), ATTEMPTS_HEADER: failures, ERROR_HEADER: error[:1000]}
        channel.basic_publish("", self.topology.retry_queue(delay_ms), delivery.body, properties)

    def _park(self, channel: BlockingChannel, delivery: _Delivery, failures: int, error: str) -> None:
        properties = delivery.properties
        log.error("consumer %s parks message %s: %s", self.queue, properties.message_id, error)
        properties.headers = {
            **_headers(delivery),
            ATTEMPTS_HEADER: failures,
            ERROR_HEADER: error[:1000],
            FAILED_AT_HEADER: int(time.time() * 1000),
            QUEUE_HEADER: self.queue,
        }
        channel.basic_publish("", self.dead_queue, delivery.body, properties)


def _headers(delivery: _Delivery) -> dict[str, Any]:
    return dict(delivery.properties.headers or {})


class WorkQueueConsumer(EventConsumer):
    """A named durable work queue (`<queue_prefix><name>`, fed through the default
    exchange: `publisher.publish(event, exchange="", routing_key=consumer.queue)`),
    one message at a time, acked only after the handler returns; same retries and
    parking as EventConsumer."""

    def __init__(self, config: MeshConfig, name: str, handle: Handler, *, prefetch: int = 1) -> None:
        super().__init__(config, name, [], handle, prefetch=prefetch, exchange="")


def work_queue_topology(config: MeshConfig, name: str) -> ConsumerTopology:
    """The topology of a work queue, for a publisher that must declare it first
    (`Publisher(config, consumers=[work_queue_topology(config, "jobs")])`)."""
    return ConsumerTopology(
        queue=f"{config.queue_prefix}{name}",
        exchange="",
        retry_delays_ms=tuple(config.bus_retry_delays_ms),
    )


# ------------------------------------------------------------------ dead letters


@dataclass(frozen=True)
class DeadMessage:
    """One parked message as seen by the admin service."""

    queue: str
    message_id: str
    event_type: str
    attempts: int
    error: str
    failed_at: float
    body: bytes


class DeadLetters:
    """Peek at and replay a consumer's parking queue with short-lived blocking
    connections (call from a worker thread, never the event loop). Peeking gets
    messages without acking them and returns them all, so none is lost."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config

    def peek(self, queue: str, max_count: int) -> list[DeadMessage]:
        connection = pika.BlockingConnection(connection_parameters(self.config, "dead-letters"))
        try:
            channel = connection.channel()
            found = []
            for _ in range(max_count):
                try:
                    method, properties, body = channel.basic_get(queue + DEAD_SUFFIX, auto_ack=False)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
                    break  # no parking queue (yet): it holds nothing
                if method is None:
                    break
                found.append(_dead_message(queue, properties, body))
            return found  # closing the channel requeues everything it got
        finally:
            _close_quietly(connection)

    def replay(self, queue: str, max_count: int, message_ids: Sequence[str] = ()) -> int:
        """Move parked messages back to `queue` (attempts reset): each is acked in
        the parking queue only after the broker confirmed its copy. Returns the count."""
        wanted = set(message_ids)
        connection = pika.BlockingConnection(connection_parameters(self.config, "dead-letters"))
        replayed = 0
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            seen = 0
            while max_count <= 0 or replayed < max_count:
                try:
                    method, properties, body = channel.basic_get(queue + DEAD_SUFFIX, auto_ack=False)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
                    break  # no parking queue (yet): nothing to replay
                if method is None:
                    break
                seen += 1
                if wanted and properties.message_id not in wanted:
                    continue  # left unacked: requeued when the channel closes
                headers = dict(properties.headers or {})
                for header in (ATTEMPTS_HEADER, ERROR_HEADER, FAILED_AT_HEADER, QUEUE_HEADER):
                    headers.pop(header, None)
                properties.headers = headers
                channel.basic_publish("", queue, body, properties)
                channel.basic_ack(method.delivery_tag)
                replayed += 1
            return replayed
        finally:
            _close_quietly(connection)


def _dead_message(queue: str, properties: BasicProperties, body: bytes) -> DeadMessage:
    headers = properties.headers or {}
    error = headers.get(ERROR_HEADER, "")
    return DeadMessage(
        queue=queue,
        message_id=properties.message_id or "",
        event_type=properties.type or "",
        attempts=int(headers.get(ATTEMPTS_HEADER, 0)),
        error=error.decode() if isinstance(error, bytes) else str(error),
        failed_at=int(headers.get(FAILED_AT_HEADER, 0)) / 1000,
        body=body,
    )
