"""The gRPC servicer of registration_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.registration.v1 import registration_service_pb2_grpc


class RegistrationService(registration_service_pb2_grpc.RegistrationServiceServicer):
    """Job submission and the users' read model of their jobs.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
