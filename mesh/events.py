"""The domain event envelope: building, packing and unpacking `switchboard.events.v1.Event`.

Routing convention: the event type string IS the AMQP routing key
("order.created.v1"), so consumers bind with patterns such as "order.#".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from switchboard.events.v1 import event_type_pb2
from switchboard.events.v1.event_pb2 import Event, TraceContext

from mesh.telemetry import new_traceparent, traceparent_var

CONTENT_TYPE = "application/x-protobuf"
M = TypeVar("M", bound=Message)

__all__ = [
    "CONTENT_TYPE",
    "Event",
    "EventDecodeError",
    "event_type_of",
    "from_bytes",
    "new_event",
    "routing_key",
    "to_bytes",
    "traced",
    "unpack",
]


class EventDecodeError(ValueError):
    """A message body that is not an Event, or an Event whose data is not the expected type."""


def new_event(event_type: str, source: str, subject: str, data: Message) -> Event:
    """A fresh envelope: uuid4 id, the current time, the caller's trace context
    (a new trace when there is none) and `data` packed as Any."""
    event = Event(
        id=str(uuid.uuid4()),
        type=event_type,
        source=source,
        subject=subject,
        trace=TraceContext(traceparent=traceparent_var.get() or new_traceparent()),
    )
    event.time.FromNanoseconds(time.time_ns())
    event.data.Pack(data)
    return event


def event_type_of(message_cls: type[Message] | Message) -> str:
    """The `(switchboard.events.v1.event_type)` option of an event message, '' when unset."""
    options = message_cls.DESCRIPTOR.GetOptions()
    value: str = options.Extensions[event_type_pb2.event_type]
    return value


def unpack(event: Event, message_cls: type[M]) -> M:
    """The event's payload as `message_cls`; EventDecodeError when it holds another type."""
    message = message_cls()
    if not event.data.Unpack(message):
        raise EventDecodeError(
            f"event {event.id} carries {event.data.TypeName()}, not {message_cls.DESCRIPTOR.full_name}"
        )
    return message


@contextmanager
def traced(event: Event) -> Iterator[None]:
    """Run a block in the event's trace context (handlers' logs carry its traceparent)."""
    token = traceparent_var.set(event.trace.traceparent)
    try:
        yield
    finally:
        traceparent_var.reset(token)


def routing_key(event: Event) -> str:
    """The AMQP routing key of an event: its type."""
    return event.type


def to_bytes(event: Event) -> bytes:
    return event.SerializeToString()


def from_bytes(body: bytes) -> Event:
    """Parse a message body; EventDecodeError when it is not an Event."""
    event = Event()
    try:
        event.ParseFromString(body)
    except DecodeError as exc:
        raise EventDecodeError(f"not an Event: {exc}") from exc
    if not event.id or not event.type:
        raise EventDecodeError("not an Event: id or type missing")
    return event
