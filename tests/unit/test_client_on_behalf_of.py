"""Calls made while serving another: the caller's token, ids and what is left of its
deadline go along (mesh.client.on_behalf_of), over one reused channel per target."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.client import on_behalf_of, shared_channel
from mesh.telemetry import request_id_var


@dataclass
class IncomingCall:
    """The two things on_behalf_of reads from a grpc.aio.ServicerContext."""

    metadata: tuple[tuple[str, str], ...]
    remaining_s: float | None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return self.remaining_s


def test_the_callers_own_token_and_request_id_are_forwarded() -> None:
    request_id_var.set("req-1")
    options = on_behalf_of(IncomingCall((("authorization", "Bearer abc"),), 3.0), 5.0)  # type: ignore[arg-type]
    assert ("authorization", "Bearer abc") in options.metadata
    assert ("x-request-id", "req-1") in options.metadata


def test_the_deadline_is_what_is_left_of_the_incoming_one_capped() -> None:
    assert on_behalf_of(IncomingCall((), 1.5), 5.0).timeout_s == 1.5  # type: ignore[arg-type]
    assert on_behalf_of(IncomingCall((), 30.0), 5.0).timeout_s == 5.0  # type: ignore[arg-type]
    assert on_behalf_of(IncomingCall((), None), 5.0).timeout_s == 5.0  # type: ignore[arg-type]
    assert on_behalf_of(IncomingCall((), -1.0), 5.0).timeout_s == 0.0  # type: ignore[arg-type]


def test_without_a_token_none_is_invented() -> None:
    options = on_behalf_of(IncomingCall((), 1.0), 5.0)  # type: ignore[arg-type]
    assert all(key != "authorization" for key, _ in options.metadata)


def test_one_channel_per_target_is_reused() -> None:
    assert shared_channel("127.0.0.1:1") is shared_channel("127.0.0.1:1")
    assert shared_channel("127.0.0.1:1") is not shared_channel("127.0.0.1:2")
