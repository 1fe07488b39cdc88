"""Configuration of activity_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from pydantic import Field, field_validator

from mesh.config import MeshConfig


class ActivityConfig(MeshConfig):
    """Settings of activity_svc: bucket size, watch cadence and request bounds."""

    service_name: str = "activity"
    grpc_port: int = 50056
    consumer_name: str = Field("activity", description="queue <queue_prefix><name>, bound to every event")
    consumer_patterns: list[str] = Field(default_factory=lambda: ["#"])
    # 15-minute UTC buckets: every IANA zone's midnight falls on a quarter hour
    # (India +5:30, Nepal +5:45), so any local day is an exact sum of buckets.
    stats_bucket_s: int = Field(900, gt=0, le=3600)
    watch_refresh_s: float = Field(1.0, gt=0, description="re-read interval so replicas see each other")
    watch_min_interval_s: float = Field(0.2, ge=0, description="coalescing: at most one update per interval")
    max_time_zone_len: int = Field(64, gt=0)
    max_range_days: int = Field(366, gt=0)
    default_page_days: int = Field(31, gt=0)

    @field_validator("stats_bucket_s")
    @classmethod
    def _divides_an_hour(cls, value: int) -> int:
        if 3600 % value:
            raise ValueError("stats_bucket_s must divide 3600 (buckets align with UTC hours)")
        return value
