"""The gRPC servicer of activity_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.activity.v1 import activity_service_pb2_grpc


class ActivityService(activity_service_pb2_grpc.ActivityServiceServicer):
    """Near-real-time daily activity statistics from domain events.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
