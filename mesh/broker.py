"""RabbitMQ reachability for health checks: one long-lived probe connection,
re-opened when it drops, so a check costs a heartbeat rather than a handshake.
While the broker is down, reconnects back off (doubling up to `max_backoff_s`):
many processes probing a struggling broker every second would exhaust its file
descriptors and keep it down."""

from __future__ import annotations

import contextlib
import threading
import time

import pika
from pika.exceptions import AMQPError

from mesh.bus import broker_urls


class BrokerProbe:
    """`check()` is True while the broker accepts connections."""

    def __init__(self, url: str, timeout_s: float = 2.0, max_backoff_s: float = 5.0) -> None:
        # Any node of a cluster will do (RABBITMQ_URL may list several).
        self._params = [pika.URLParameters(node) for node in broker_urls(url)]
        for params in self._params:
            params.socket_timeout = timeout_s
            params.blocked_connection_timeout = timeout_s
            params.connection_attempts = 1
            params.client_properties = {"connection_name": "health-probe"}
        self._connection: pika.BlockingConnection | None = None
        self._lock = threading.Lock()
        self._max_backoff_s = max_backoff_s
        self._backoff_s = 0.0
        self._next_attempt = 0.0

    def check(self) -> bool:
        with self._lock:
            if self._connection is None and time.monotonic() < self._next_attempt:
                return False
            try:
                if self._connection is None or not self._connection.is_open:
                    self._connection = pika.BlockingConnection(self._params)
                self._connection.process_data_events(time_limit=0)
                self._backoff_s = 0.0
                return self._connection.is_open
            except (AMQPError, OSError):
                self._connection = None
                self._backoff_s = min(max(self._backoff_s * 2, 0.5), self._max_backoff_s)
                self._next_attempt = time.monotonic() + self._backoff_s
                return False

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                with contextlib.suppress(AMQPError, OSError):
                    self._connection.close()
            self._connection = None
