"""Configuration of order_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from pydantic import Field

from mesh.config import MeshConfig


class OrderConfig(MeshConfig):
    """Settings of order_svc: limits of the PlaceOrder contract and paging."""

    service_name: str = "order"
    grpc_port: int = 50055
    max_lines: int = Field(100, gt=0, description="line items per order")
    max_quantity: int = Field(1_000_000, gt=0, description="units per line")
    max_unit_price_minor: int = Field(10**12, ge=0, description="price of one unit, minor units")
    max_sku_len: int = Field(64, gt=0)
    max_idempotency_key_len: int = Field(128, gt=0)
    max_reason_len: int = Field(500, gt=0)
    max_id_len: int = Field(64, gt=0, description="longest order or customer id accepted as input")
    transaction_attempts: int = Field(5, gt=0, description="tries of one order transaction")
    place_batch_max: int = Field(64, gt=0, description="most placements sharing one transaction")
    default_page_size: int = Field(50, gt=0)
    max_page_size: int = Field(1000, gt=0)
