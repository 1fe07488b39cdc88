"""The gRPC servicer of scheduler_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.scheduler.v1 import scheduler_service_pb2_grpc


class SchedulerAdminService(scheduler_service_pb2_grpc.SchedulerAdminServiceServicer):
    """Job scheduling, execution by workers, and the admin view of jobs.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
