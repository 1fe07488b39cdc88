"""Start session_svc: `python -m session_svc`."""

from __future__ import annotations

from switchboard.session.v1 import session_service_pb2_grpc

from mesh.server import MeshServer
from session_svc.config import SessionConfig
from session_svc.service import SessionService

SERVICE_NAME = "switchboard.session.v1.SessionService"


def main() -> None:
    config = SessionConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(
        SERVICE_NAME, SessionService(), session_service_pb2_grpc.add_SessionServiceServicer_to_server
    )
    server.run()


if __name__ == "__main__":
    main()
