"""JSON logs that carry the request and trace ids, W3C trace context helpers,
and the Prometheus endpoint every service exposes on its metrics port."""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import sys

from prometheus_client import start_http_server
from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
traceparent_var: contextvars.ContextVar[str] = contextvars.ContextVar("traceparent", default="")


class _ContextFilter(logging.Filter):
    """Stamps every record with the service name and the current ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        record.trace_id = trace_id(traceparent_var.get())
        return True


def configure_logging(service: str, level: str = "INFO", log_file: str = "") -> None:
    """JSON lines on stderr (and in `log_file` when set), one logger tree per process."""
    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s %(trace_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    context = _ContextFilter(service)
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def start_metrics_endpoint(port: int) -> None:
    """Serve Prometheus metrics on `port` (0 turns the endpoint off)."""
    if port:
        start_http_server(port)


def new_traceparent(parent: str = "") -> str:
    """A W3C traceparent: keeps the parent's trace id, or starts a new trace."""
    trace = trace_id(parent) or secrets.token_hex(16)
    return f"00-{trace}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str) -> str:
    """The trace id of a W3C traceparent, or '' when it is malformed."""
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return ""
