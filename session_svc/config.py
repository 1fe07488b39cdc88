"""Configuration of session_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from pydantic import Field

from mesh.timers import TimersConfig


class SessionConfig(TimersConfig):
    """Settings of session_svc (timer runner settings come from TimersConfig)."""

    service_name: str = "session"
    grpc_port: int = 50052

    session_warning_before_s: float = Field(60.0, ge=0, description="pause warning lead time")
    session_recharge_grace_s: float = Field(300.0, gt=0, description="paused this long → EXPIRED")
    session_max_turn_attempts: int = Field(100, gt=0, description="optimistic-concurrency retries")
    session_watch_poll_s: float = Field(0.1, gt=0, le=0.2, description="watch re-read interval")
    session_watch_tick_s: float = Field(1.0, gt=0, description="TICK interval of WatchSession")
    session_batch_attempts: int = Field(5, gt=0, description="tries of one batch transaction when busy")
    session_start_batch_max: int = Field(100, gt=0, description="most starts sharing one transaction")
    session_start_yield_s: float = Field(
        0.1, ge=0, description="longest a start batch waits for due timers being applied"
    )
    session_max_seconds: int = Field(86_400, gt=0, description="largest prepaid/recharge amount")
    chat_target: str = Field("127.0.0.1:50051", min_length=1, description="chat_svc (room checks)")
    chat_deadline_s: float = Field(
        5.0, gt=0, description="longest a room check waits for chat_svc (within the caller's deadline)"
    )
