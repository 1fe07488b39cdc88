"""The gRPC servicer of session_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.session.v1 import session_service_pb2_grpc


class SessionService(session_service_pb2_grpc.SessionServiceServicer):
    """Paid chat sessions with server-owned pause-for-recharge timers.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
