"""The registration side's domain: a user's job and the rules for applying the
scheduler's status changes to it (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mesh.jobs_catalogue import TERMINAL, JobStatus  # noqa: F401 - re-exported to the service


@dataclass
class StatusChange:
    """The scheduler's view of a job at one sequence number (a JobStatusChanged).
    It applies only to a job whose stored sequence is lower: a stale or repeated
    update never moves a job backwards (JobRepository.apply_change)."""

    sequence: int
    status: JobStatus
    progress: float
    result: dict[str, Any] | None
    error: str
    attempt: int
    max_attempts: int

    def shown_status(self, cancel_requested: bool) -> JobStatus:
        """The status readers see once this change applies: a cancel the user asked
        for and the scheduler has not confirmed yet keeps showing CANCELLING."""
        if cancel_requested and not self.status.terminal:
            return JobStatus.CANCELLING
        return self.status


@dataclass
class Job:
    """A user's job as the registration service keeps it."""

    id: str
    owner_id: str
    definition: str
    parameters: dict[str, Any]
    idempotency_key: str
    max_attempts: int
    create_time: float
    update_time: float
    run_at: float | None = None
    status: JobStatus = JobStatus.REGISTERED
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""
    attempt: int = 0
    sequence: int = 0
    cancel_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def request_cancel(self, now: float) -> bool:
        """Mark cancellation as asked; False when already asked or cancelled.
        Raises JobFinished for a job that succeeded or failed."""
        if self.status == JobStatus.CANCELLED or self.cancel_requested:
            return False
        if self.status.terminal:
            raise JobFinished(f"job {self.id} already {self.status.name}")
        self.cancel_requested = True
        self.status = JobStatus.CANCELLING
        self.update_time = now
        return True


class JobFinished(Exception):
    """The job reached SUCCEEDED or FAILED: it can no longer be cancelled."""
