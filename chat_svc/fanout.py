"""Cross-replica fan-out over RabbitMQ. Each replica owns one exclusive,
auto-delete queue on the chat topic exchange (`<events_exchange>.chat`, routing
key `room.<room_id>`) and binds it only for rooms that have local listeners.
Delivery is best effort by design: a lost publish is found by the subscribers'
gap checks and filled from the store, so no acks are needed here."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from pika.spec import Basic, BasicProperties

from chat_svc.config import ChatConfig
from mesh.bus import Backoff, Publisher, connection_parameters, declare_exchange
from mesh.events import Event, EventDecodeError, from_bytes

log = logging.getLogger(__name__)

Delivery = Callable[[str, Event], None]


def routing_key(room_id: str) -> str:
    return f"room.{room_id}"


class FanoutPublisher:
    """Publishes chat events (messages, presence) to the chat exchange with confirms;
    failures are logged only, because readers fill gaps from the store."""

    def __init__(self, config: ChatConfig) -> None:
        self.exchange = config.fanout_exchange
        self._publisher = Publisher(config, "chat-fanout", declare=False)

    def start(self) -> None:
        self._publisher.start()

    def healthy(self) -> bool:
        return self._publisher.healthy()

    def publish(self, room_id: str, event: Event) -> None:
        future = self._publisher.publish(event, exchange=self.exchange, routing_key=routing_key(room_id))
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        self._publisher.close()


def _log_failure(future: Future[None]) -> None:
    error = future.exception()
    if error is not None:
        log.warning("chat fan-out publish failed (readers will fill from the store): %s", error)


class FanoutSubscriber:
    """This replica's queue: bind/unbind per room from any thread; every delivery is
    handed to `deliver(room_id, event)` on the consumer thread."""

    def __init__(self, config: ChatConfig, deliver: Delivery) -> None:
        self.config = config
        self.exchange = config.fanout_exchange
        self._deliver = deliver
        self._rooms: set[str] = set()
        self._commands: deque[tuple[str, str, Future[None]]] = deque()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chat-fanout", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def healthy(self) -> bool:
        return self._connected.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def bind(self, room_id: str) -> Future[None]:
        """Resolved once bound (or at once when disconnected: the reconnect binds it)."""
        return self._command("bind", room_id)

    def unbind(self, room_id: str) -> Future[None]:
        return self._command("unbind", room_id)

    def _command(self, action: str, room_id: str) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            if action == "bind":
                self._rooms.add(room_id)
            else:
                self._rooms.discard(room_id)
            if not self._connected.is_set():
                future.set_result(None)
                return future
            self._commands.append((action, room_id, future))
        return future

    def _run(self) -> None:
        backoff = Backoff(self.config.bus_reconnect_max_s)
        while not self._stopping.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(connection_parameters(self.config, "chat-fanout"))
                channel = connection.channel()
                declare_exchange(channel, self.exchange)
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                with self._lock:
                    rooms = set(self._rooms)
                    self._commands.clear()  # the full room set is bound below
                for room_id in rooms:
                    channel.queue_bind(queue, self.exchange, routing_key=routing_key(room_id))
                channel.basic_consume(queue, self._on_message, auto_ack=True)
                self._connected.set()
                backoff.reset()
                log.info("chat fan-out queue %s bound for %d rooms", queue, len(rooms))
                while not self._stopping.is_set():
                    self._apply_commands(channel, queue)
                    connection.process_data_events(time_limit=0.02)
            except Exception as exc:  # pika's handshake timeouts are no AMQPError: never let the thread die
                if not self._stopping.is_set():
                    log.warning("chat fan-out lost its connection: %s", exc)
            finally:
                self._connected.clear()
                self._fail_commands()
                if connection is not None and connection.is_open:
                    with contextlib.suppress(AMQPError, OSError):
                        connection.close()
            self._stopping.wait(backoff.next())

    def _apply_commands(self, channel: BlockingChannel, queue: str) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                action, room_id, future = self._commands.popleft()
                wanted = room_id in self._rooms
            if action == "bind" and wanted:
                channel.queue_bind(queue, self.exchange, routing_key=routing_key(room_id))
            elif action == "unbind" and not wanted:
                channel.queue_unbind(queue, self.exchange, routing_key=routing_key(room_id))
            future.set_result(None)

    def _fail_commands(self) -> None:
        with self._lock:
            pending = list(self._commands)
            self._commands.clear()
        for _, _, future in pending:
            if not future.done():
                future.set_result(None)  # the reconnect binds the whole room set

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        room_id = method.routing_key.removeprefix("room.")
        try:
            event = from_bytes(body)
        except EventDecodeError:
            log.warning("chat fan-out dropped a body that is not an Event")
            return
        self._deliver(room_id, event)
