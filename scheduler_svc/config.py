"""Configuration of scheduler_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class SchedulerConfig(MeshConfig):
    """Settings of scheduler_svc."""

    service_name: str = "scheduler"
    grpc_port: int = 50054
