"""Configuration of registration_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mesh.config import MeshConfig
from mesh.jobs_catalogue import DEFAULT_CATALOGUE_FILE


class RegistrationConfig(MeshConfig):
    """Settings of registration_svc."""

    service_name: str = "registration"
    grpc_port: int = 50053
    job_catalogue_file: Path = DEFAULT_CATALOGUE_FILE
    max_run_ahead_s: float = Field(30 * 24 * 3600, gt=0, description="furthest run_at accepted")
    watch_poll_interval_s: float = Field(0.1, gt=0, description="how often WatchJob re-reads a job")
    list_default_page_size: int = Field(50, gt=0)
    list_max_page_size: int = Field(1000, gt=0)
    submit_batch_max: int = Field(100, gt=0, description="most submissions sharing one transaction")
