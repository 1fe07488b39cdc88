"""Client-side helpers: channels, bearer metadata and health checks (used by
`mesh status`, the console client, service-to-service calls and the tests)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.telemetry import request_id_var, traceparent_var

SERVING = health_pb2.HealthCheckResponse.SERVING

_channels: dict[str, grpc.Channel] = {}
_channels_lock = threading.Lock()


def shared_channel(target: str) -> grpc.Channel:
    """The process's one channel to `target`, opened on first use and reused by every
    later call (a gRPC channel multiplexes calls and reconnects by itself; opening
    one per call pays a connection each time). Thread-safe."""
    with _channels_lock:
        channel = _channels.get(target)
        if channel is None:
            channel = _channels[target] = grpc.insecure_channel(target)
        return channel


@dataclass(frozen=True)
class CallOptions:
    """Metadata and timeout of an outgoing call made while serving another one."""

    metadata: tuple[tuple[str, str], ...]
    timeout_s: float


def on_behalf_of(context: grpc.aio.ServicerContext, max_timeout_s: float) -> CallOptions:
    """Options to call another service as the caller of the RPC being served: its own
    bearer token (the callee's authorisation decides what the caller may see, so no
    service key is needed), its request id and trace context, and a deadline of what
    is left of the incoming call's (at most `max_timeout_s`)."""
    incoming = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    metadata = [("x-request-id", request_id_var.get()), ("traceparent", traceparent_var.get())]
    if incoming.get("authorization"):
        metadata.append(("authorization", incoming["authorization"]))
    remaining = context.time_remaining()
    timeout = max_timeout_s if remaining is None else max(0.0, min(remaining, max_timeout_s))
    return CallOptions(tuple((k, v) for k, v in metadata if v), timeout)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a JWT."""
    return (("authorization", f"Bearer {token}"),)


def health_status(target: str, service: str = "", timeout_s: float = 1.0) -> str:
    """The grpc.health.v1 status name of `service` at `target` (UNREACHABLE when down)."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        return (
            "UNREACHABLE"
            if code in (None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            else str(code)
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
