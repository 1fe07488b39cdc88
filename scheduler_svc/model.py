"""The scheduler's domain: a job's lifecycle across attempts, retries and
cancellation (pure, no I/O). Every visible change bumps the per-job `sequence`
that JobStatusChanged carries, so readers can drop stale updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mesh.jobs_catalogue import TERMINAL, JobStatus  # noqa: F401 - re-exported to the service

MAX_ERROR = 2000


class InvalidTransition(Exception):
    """The job's status does not allow the requested change."""


@dataclass
class Attempt:
    """One run of a job by a worker."""

    number: int
    worker_id: str
    start_time: float
    end_time: float | None = None
    error: str = ""


@dataclass
class SchedulerJob:
    """A job as the scheduler stores and runs it. `dispatch_at` is set while a
    QUEUED job's work item must (still) go on the work queue: from that time on
    (now, or a retry's delay later); None once the broker has it, or never again.
    A REGISTERED job waiting for its `run_at` has none: its durable timer queues it."""

    id: str
    owner_id: str
    definition: str
    parameters: dict[str, Any]
    max_attempts: int
    timeout_s: float
    create_time: float
    update_time: float
    run_at: float | None = None
    status: JobStatus = JobStatus.REGISTERED
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""
    attempt: int = 0
    budget_base: int = 0  # attempts used before the current budget (RetryJob starts a new one)
    sequence: int = 0
    worker_id: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    dispatch_at: float | None = None
    queue_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    cancel_requested: bool = False

    # ------------------------------------------------------------ transitions

    def _changed(self, now: float) -> None:
        self.sequence += 1
        self.update_time = now

    def queue(self, now: float) -> bool:
        """A due REGISTERED job goes on the work queue."""
        if self.status != JobStatus.REGISTERED:
            return False
        self.status = JobStatus.QUEUED
        self.queue_time = now
        self.dispatch_at = now
        self._changed(now)
        return True

    @property
    def attempts_left(self) -> int:
        return self.max_attempts - (self.attempt - self.budget_base)

    def start_attempt(self, worker_id: str, now: float) -> bool:
        """A worker takes the job: the next attempt starts. A RUNNING job here means
        its worker died (its delivery came back): that attempt is closed as lost.
        Returns False when the job ended instead (cancelled, or no attempts left)."""
        if self.status in (JobStatus.RUNNING, JobStatus.CANCELLING):
            self._close_attempt(now, "the worker was lost during the attempt")
        elif self.status != JobStatus.QUEUED:
            raise InvalidTransition(f"job {self.id} is {self.status.name}, not QUEUED")
        if self.cancel_requested:
            self._end(JobStatus.CANCELLED, now)
            return False
        if self.attempts_left <= 0:
            self.error = self.error or "no attempts left"
            self._end(JobStatus.FAILED, now)
            return False
        self.attempt += 1
        self.status = JobStatus.RUNNING
        self.dispatch_at = None  # its work item has arrived
        self.progress = 0.0
        self.worker_id = worker_id
        self.start_time = now
        self.attempts.append(Attempt(self.attempt, worker_id, now))
        self._changed(now)
        return True

    def report_progress(self, attempt: int, percent: float, now: float) -> bool:
        if attempt != self.attempt or self.status not in (JobStatus.RUNNING, JobStatus.CANCELLING):
            return False
        self.progress = max(0.0, min(100.0, percent))
        self._changed(now)
        return True

    def succeed(self, attempt: int, result: dict[str, Any], now: float) -> bool:
        if not self._current(attempt):
            return False
        self._close_attempt(now, "")
        self.result = result
        self.progress = 100.0
        self.error = ""
        self._end(JobStatus.SUCCEEDED, now)
        return True

    def fail(
        self, attempt: int, error: str, now: float, retry_delay_s: float, *, permanent: bool = False
    ) -> bool:
        """The attempt failed: back to QUEUED (after `retry_delay_s`) while attempts
        are left, else FAILED. A `permanent` failure (another attempt would fail the
        same way) is FAILED at once, whatever the attempts left."""
        if not self._current(attempt):
            return False
        self.error = error[:MAX_ERROR]
        self._close_attempt(now, self.error)
        if self.attempts_left <= 0 or self.cancel_requested or permanent:
            self._end(JobStatus.CANCELLED if self.cancel_requested else JobStatus.FAILED, now)
            return True
        self.status = JobStatus.QUEUED
        self.queue_time = now
        self.dispatch_at = now + retry_delay_s
        self._changed(now)
        return True

    def cancelled(self, attempt: int, now: float) -> bool:
        """The worker stopped the attempt because cancellation was asked."""
        if not self._current(attempt):
            return False
        self._close_attempt(now, "cancelled")
        self._end(JobStatus.CANCELLED, now)
        return True

    def request_cancel(self, now: float) -> bool:
        """Cancel a waiting job at once, flag a running one (its worker stops at its
        next check). Raises InvalidTransition for SUCCEEDED or FAILED."""
        if self.status == JobStatus.CANCELLED or self.status == JobStatus.CANCELLING:
            return False
        if self.status.terminal:
            raise InvalidTransition(f"job {self.id} already {self.status.name}")
        self.cancel_requested = True
        if self.status == JobStatus.RUNNING:
            self.status = JobStatus.CANCELLING
            self._changed(now)
        else:
            self._end(JobStatus.CANCELLED, now)
        return True

    def retry(self, now: float) -> None:
        """Run a FAILED or CANCELLED job again with a fresh budget of attempts."""
        if self.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise InvalidTransition(f"job {self.id} is {self.status.name}; only FAILED or CANCELLED retry")
        self.budget_base = self.attempt
        self.cancel_requested = False
        self.status = JobStatus.QUEUED
        self.progress = 0.0
        self.result = None
        self.end_time = None
        self.queue_time = now
        self.dispatch_at = now
        self._changed(now)

    # ---------------------------------------------------------------- helpers

    def _current(self, attempt: int) -> bool:
        """Compare-and-set guard: only the attempt that is running may finish it, once."""
        return attempt == self.attempt and self.status in (JobStatus.RUNNING, JobStatus.CANCELLING)

    def _close_attempt(self, now: float, error: str) -> None:
        if self.attempts and self.attempts[-1].end_time is None:
            self.attempts[-1].end_time = now
            self.attempts[-1].error = error[:MAX_ERROR]

    def _end(self, status: JobStatus, now: float) -> None:
        self.status = status
        self.end_time = now
        self.dispatch_at = None
        self._changed(now)
