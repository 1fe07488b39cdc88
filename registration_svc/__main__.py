"""Start registration_svc: `python -m registration_svc`."""

from __future__ import annotations

from switchboard.registration.v1 import registration_service_pb2_grpc

from mesh.server import MeshServer
from registration_svc.config import RegistrationConfig
from registration_svc.service import RegistrationService

SERVICE_NAME = "switchboard.registration.v1.RegistrationService"


def main() -> None:
    config = RegistrationConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(
        SERVICE_NAME,
        RegistrationService(),
        registration_service_pb2_grpc.add_RegistrationServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
