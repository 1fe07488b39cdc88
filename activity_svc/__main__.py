"""Start activity_svc: `python -m activity_svc`."""

from __future__ import annotations

from switchboard.activity.v1 import activity_service_pb2_grpc

from activity_svc.config import ActivityConfig
from activity_svc.service import ActivityService
from mesh.server import MeshServer

SERVICE_NAME = "switchboard.activity.v1.ActivityService"


def main() -> None:
    config = ActivityConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(
        SERVICE_NAME, ActivityService(), activity_service_pb2_grpc.add_ActivityServiceServicer_to_server
    )
    server.run()


if __name__ == "__main__":
    main()
