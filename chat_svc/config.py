"""Configuration of chat_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class ChatConfig(MeshConfig):
    """Settings of chat_svc."""

    service_name: str = "chat"
    grpc_port: int = 50051
