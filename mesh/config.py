"""Typed configuration from environment variables: one settings class per service,
all deriving from `MeshConfig`, so no retry count, delay or port hides in code."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh.tls import TlsFiles


class MeshConfig(BaseSettings):
    """Settings every service shares. Environment variables use the field name in
    upper case (`MONGO_URL`, `GRPC_PORT` ...)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    service_name: str = "switchboard"
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(50050, ge=0, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535, description="0 disables the metrics endpoint")
    log_level: str = "INFO"
    log_file: str = ""

    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = ""
    mongo_timeout_ms: int = Field(2000, gt=0)

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    events_exchange: str = "switchboard.events"
    queue_prefix: str = ""
    bus_prefetch: int = Field(32, gt=0)
    bus_max_attempts: int = Field(5, gt=0)
    bus_retry_delays_ms: list[int] = Field(default_factory=lambda: [200, 1000, 5000, 15000])
    bus_reconnect_max_s: float = Field(5.0, gt=0)
    bus_heartbeat_s: int = Field(30, ge=0, description="AMQP heartbeat; 0 disables it")
    bus_publish_timeout_s: float = Field(10.0, gt=0, description="longest wait for a confirm")
    bus_batch_max: int = Field(
        16, gt=0, description="most deliveries a consumer hands its handler at once (capped by prefetch)"
    )
    bus_batch_wait_ms: float = Field(
        2.0, ge=0, description="how long a consumer waits for more deliveries to fill a batch"
    )

    outbox_max_attempts: int = Field(10, gt=0)
    outbox_sweep_interval_s: float = Field(2.0, gt=0)
    outbox_claim_ttl_s: float = Field(30.0, gt=0)
    outbox_retention_s: float = Field(7 * 24 * 3600, gt=0)
    outbox_batch_size: int = Field(200, gt=0)
    outbox_cleanup_interval_s: float = Field(60.0, gt=0)
    outbox_mark_interval_s: float = Field(
        0.2,
        ge=0,
        description="confirmed rows are marked PUBLISHED together, at most this long after "
        "their confirm (0: at once); each mark is a write that holds the service's database",
    )
    outbox_retry_max_s: float = Field(60.0, gt=0, description="longest wait between attempts")
    inbox_retention_s: float = Field(14 * 24 * 3600, gt=0)
    inbox_cleanup_interval_s: float = Field(60.0, gt=0)

    jwt_public_key_file: Path = Path(".data/keys/jwt.pub")
    jwt_private_key_file: Path = Path(".data/keys/jwt.key")
    jwt_issuer: str = "switchboard"
    jwt_audience: str = "switchboard"
    auth_required: bool = True

    mesh_tls: bool = Field(
        False, description="mTLS on the gRPC port: a client certificate from the mesh CA is required"
    )
    tls_dir: Path = Field(Path(".data/pki"), description="where <service>.pem/.key and ca.pem are")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    health_port: int = Field(
        0, ge=0, le=65535, description="plaintext port serving grpc.health.v1 only (probes); 0: none"
    )

    health_check_interval_s: float = Field(1.0, gt=0)
    shutdown_grace_s: float = Field(10.0, ge=0)
    default_deadline_s: float = Field(30.0, gt=0)
    max_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    blocking_workers: int = Field(16, gt=0)

    @property
    def tls_files(self) -> TlsFiles:
        """This workload's certificate, key and CA (default: `<tls_dir>/<service_name>.pem`)."""
        return TlsFiles(
            self.tls_cert_file or self.tls_dir / f"{self.service_name}.pem",
            self.tls_key_file or self.tls_dir / f"{self.service_name}.key",
            self.tls_ca_file or self.tls_dir / "ca.pem",
        )

    @property
    def database(self) -> str:
        """The service's own MongoDB database (one per service)."""
        return self.mongo_db or f"switchboard_{self.service_name}"
