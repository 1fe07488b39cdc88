"""RabbitMQ reachability for health checks: one long-lived probe connection,
re-opened when it drops, so a check costs a heartbeat rather than a handshake."""

from __future__ import annotations

import contextlib
import threading

import pika
from pika.exceptions import AMQPError


class BrokerProbe:
    """`check()` is True while the broker accepts connections."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self._params = pika.URLParameters(url)
        self._params.socket_timeout = timeout_s
        self._params.blocked_connection_timeout = timeout_s
        self._params.connection_attempts = 1
        self._params.client_properties = {"connection_name": "health-probe"}
        self._connection: pika.BlockingConnection | None = None
        self._lock = threading.Lock()

    def check(self) -> bool:
        with self._lock:
            try:
                if self._connection is None or not self._connection.is_open:
                    self._connection = pika.BlockingConnection(self._params)
                self._connection.process_data_events(time_limit=0)
                return self._connection.is_open
            except (AMQPError, OSError):
                self._connection = None
                return False

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                with contextlib.suppress(AMQPError, OSError):
                    self._connection.close()
            self._connection = None
