"""Configuration of session_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class SessionConfig(MeshConfig):
    """Settings of session_svc."""

    service_name: str = "session"
    grpc_port: int = 50052
