"""The mesh's services and their fixed local ports: the one table that `mesh up`,
the gateway template, the README and the tests read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the mesh."""

    name: str  # short name: "order"
    grpc_port: int
    metrics_port: int
    grpc_services: tuple[str, ...]  # full names of the public gRPC services it serves

    @property
    def module(self) -> str:
        return f"{self.name}_svc"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("chat", 50051, 9101, ("switchboard.chat.v1.ChatService",)),
    ServiceSpec("session", 50052, 9102, ("switchboard.session.v1.SessionService",)),
    ServiceSpec("registration", 50053, 9103, ("switchboard.registration.v1.RegistrationService",)),
    ServiceSpec("scheduler", 50054, 9104, ("switchboard.scheduler.v1.SchedulerAdminService",)),
    ServiceSpec("order", 50055, 9105, ("switchboard.order.v1.OrderService",)),
    ServiceSpec("activity", 50056, 9106, ("switchboard.activity.v1.ActivityService",)),
)
GATEWAY_PORT = 8080
GATEWAY_ADMIN_PORT = 9901
MONGO_PORT = 27017


def service(name: str) -> ServiceSpec:
    return next(s for s in SERVICES if s.name == name)
