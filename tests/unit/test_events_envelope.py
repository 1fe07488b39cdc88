"""The event envelope, the bus's naming and delay rules, and outbox page tokens."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from mesh.bus import Backoff, ConsumerTopology, event_properties
from mesh.events import EventDecodeError, from_bytes, new_event, routing_key, to_bytes, unpack
from mesh.outbox import decode_page_token, encode_page_token
from mesh.telemetry import traceparent_var

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_new_event_carries_the_callers_trace_and_round_trips() -> None:
    token = traceparent_var.set(TRACEPARENT)
    try:
        event = new_event("order.created.v1", "order_svc", "orders/1", Int64Value(value=7))
    finally:
        traceparent_var.reset(token)
    assert event.trace.traceparent == TRACEPARENT
    assert routing_key(event) == "order.created.v1"
    assert event.time.seconds > 0 and len(event.id) == 36
    assert unpack(from_bytes(to_bytes(event)), Int64Value).value == 7


def test_new_event_starts_a_trace_when_there_is_none() -> None:
    event = new_event("a.b.v1", "s", "x", Int64Value(value=1))
    assert event.trace.traceparent.startswith("00-")


def test_unpack_refuses_another_payload_type() -> None:
    event = new_event("a.b.v1", "s", "x", Int64Value(value=1))
    with pytest.raises(EventDecodeError):
        unpack(event, StringValue)


def test_a_body_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(EventDecodeError):
        from_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(EventDecodeError):
        from_bytes(b"")


def test_amqp_properties_follow_the_envelope() -> None:
    event = new_event("a.b.v1", "svc", "x", Int64Value(value=1))
    properties = event_properties(event)
    assert properties.message_id == event.id
    assert properties.type == "a.b.v1"
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/x-protobuf"
    assert properties.headers["traceparent"] == event.trace.traceparent


def test_retry_delay_grows_then_repeats_the_last() -> None:
    topology = ConsumerTopology("p.q", "ex", ("#",), (100, 1000, 5000))
    assert [topology.delay_for(n) for n in (1, 2, 3, 4, 9)] == [100, 1000, 5000, 5000, 5000]
    assert topology.retry_queue(1000) == "p.q.retry.1000"
    assert topology.dead_queue == "p.q.dead"


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(max_s=0.5, first_s=0.1)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


def test_outbox_page_token_round_trips() -> None:
    row = {"created_at": 1795633827.8063881, "_id": "3f1c|x"}
    assert decode_page_token(encode_page_token(row)) == (1795633827.8063881, "3f1c|x")
