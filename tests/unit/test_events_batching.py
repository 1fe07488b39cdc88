"""Batched consumption without a broker: the per-event adapter's outcomes and
trace context, and the consumer's choice of handler."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import Int64Value

from mesh.bus import EventConsumer, one_by_one
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.telemetry import traceparent_var


def event(n: int) -> Event:
    return new_event("test.counted.v1", "test", f"n/{n}", Int64Value(value=n))


def test_one_by_one_fails_only_the_event_whose_handler_raised() -> None:
    handled: list[str] = []

    def handle(e: Event) -> None:
        if e.subject == "n/1":
            raise ValueError("bad")
        handled.append(e.subject)

    outcomes = one_by_one(handle)([event(0), event(1), event(2)])

    assert handled == ["n/0", "n/2"]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)


def test_one_by_one_runs_each_handler_in_its_events_trace() -> None:
    seen: list[str | None] = []
    events = [event(0), event(1)]

    one_by_one(lambda e: seen.append(traceparent_var.get()))(events)

    assert seen == [e.trace.traceparent for e in events]
    assert traceparent_var.get() not in seen


def test_a_consumer_takes_exactly_one_kind_of_handler() -> None:
    config = MeshConfig()
    with pytest.raises(ValueError):
        EventConsumer(config, "both", ["#"], lambda e: None, handle_batch=lambda events: [])
    with pytest.raises(ValueError):
        EventConsumer(config, "neither", ["#"])
