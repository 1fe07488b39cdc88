"""Configuration of registration_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class RegistrationConfig(MeshConfig):
    """Settings of registration_svc."""

    service_name: str = "registration"
    grpc_port: int = 50053
