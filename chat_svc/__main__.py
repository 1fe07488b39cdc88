"""Start chat_svc: `python -m chat_svc`."""

from __future__ import annotations

from switchboard.chat.v1 import chat_service_pb2_grpc

from chat_svc.config import ChatConfig
from chat_svc.service import ChatService
from mesh.server import MeshServer

SERVICE_NAME = "switchboard.chat.v1.ChatService"


def main() -> None:
    config = ChatConfig()
    server = MeshServer(config)
    server.use_store()
    server.use_broker()
    server.add_service(SERVICE_NAME, ChatService(), chat_service_pb2_grpc.add_ChatServiceServicer_to_server)
    server.run()


if __name__ == "__main__":
    main()
