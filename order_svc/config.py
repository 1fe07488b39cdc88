"""Configuration of order_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from mesh.config import MeshConfig


class OrderConfig(MeshConfig):
    """Settings of order_svc."""

    service_name: str = "order"
    grpc_port: int = 50055
