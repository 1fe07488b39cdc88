"""Client-side helpers: channels, bearer metadata and health checks (used by
`mesh status`, the console client, service-to-service calls and the tests)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


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
