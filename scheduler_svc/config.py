"""Configuration of scheduler_svc and its workers (environment variables, see mesh.config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mesh.jobs_catalogue import DEFAULT_CATALOGUE_FILE
from mesh.timers import TimersConfig


class SchedulerConfig(TimersConfig):
    """Settings of scheduler_svc: dispatch, workers, leases and limits (the jobs'
    durable timers: TimersConfig)."""

    service_name: str = "scheduler"
    grpc_port: int = 50054
    job_catalogue_file: Path = DEFAULT_CATALOGUE_FILE
    work_queue: str = Field("scheduler.work", description="work queue <queue_prefix><name>")
    worker_threads: int = Field(2, ge=0, description="in-process workers; 0 leaves the work to separate ones")
    dispatch_interval_s: float = Field(1.0, gt=0, description="recovery sweep for unsent work items")
    dispatch_grace_s: float = Field(5.0, ge=0, description="an unconfirmed work item this late is resent")
    dispatch_batch: int = Field(200, gt=0, description="most work items published per batch")
    heartbeat_interval_s: float = Field(0.5, gt=0, description="worker heartbeat and cancel-flag poll")
    worker_lease_s: float = Field(3.0, gt=0, description="no heartbeat this long: worker lost")
    retry_delay_s: float = Field(1.0, ge=0, description="pause before the next attempt of a failed job")
    retry_backoff_factor: float = Field(2.0, ge=1, le=10, description="each next pause is this much longer")
    retry_max_delay_s: float = Field(60.0, ge=0, description="the longest pause between attempts")
    timeout_grace_s: float = Field(2.0, ge=0, description="how long a timed-out job may take to stop")
    progress_min_interval_s: float = Field(0.2, ge=0, description="at most one progress event per interval")
    activity_target: str = "127.0.0.1:50056"
    activity_deadline_s: float = Field(10.0, gt=0)
    service_token_ttl_s: float = Field(300.0, gt=0)
    list_default_page_size: int = Field(50, gt=0)
    list_max_page_size: int = Field(1000, gt=0)
