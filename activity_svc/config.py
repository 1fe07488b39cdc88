"""Configuration of activity_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class ActivityConfig(MeshConfig):
    """Settings of activity_svc."""

    service_name: str = "activity"
    grpc_port: int = 50056
