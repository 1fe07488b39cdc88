"""Start scheduler_svc: `python -m scheduler_svc`."""

from __future__ import annotations

from switchboard.scheduler.v1 import scheduler_service_pb2_grpc

from mesh.server import MeshServer
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.service import SchedulerAdminService

SERVICE_NAME = "switchboard.scheduler.v1.SchedulerAdminService"


def main() -> None:
    config = SchedulerConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(
        SERVICE_NAME,
        SchedulerAdminService(),
        scheduler_service_pb2_grpc.add_SchedulerAdminServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
