"""Which failed attempts are retried: a permanent failure (a downstream answer no
retry can change, a deterministic exception) fails the job at once; a transient
one is retried after a pause that grows by the configured factor."""

from __future__ import annotations

import grpc
import pytest

from scheduler_svc.config import SchedulerConfig
from scheduler_svc.jobs import PERMANENT_CODES, JobError, is_permanent
from scheduler_svc.model import JobStatus, SchedulerJob
from scheduler_svc.worker import retry_delay_s


def _running(max_attempts: int = 3) -> SchedulerJob:
    job = SchedulerJob(
        id="j1",
        owner_id="alice",
        definition="daily_report",
        parameters={},
        max_attempts=max_attempts,
        timeout_s=10,
        create_time=0.0,
        update_time=0.0,
    )
    job.queue(1.0)
    assert job.start_attempt("w1", 2.0)
    return job


def test_a_permanent_failure_ends_the_job_failed_with_attempts_left() -> None:
    job = _running()
    assert job.fail(1, "INVALID_ARGUMENT: date", 3.0, 1.0, permanent=True)
    assert job.status == JobStatus.FAILED and job.attempts_left == 2 and job.dispatch_at is None


def test_a_transient_failure_queues_the_next_attempt_after_the_delay() -> None:
    job = _running()
    assert job.fail(1, "UNAVAILABLE", 3.0, 4.0)
    assert job.status == JobStatus.QUEUED and job.dispatch_at == 7.0


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    ],
)
def test_downstream_answers_no_retry_can_change_are_permanent(code: grpc.StatusCode) -> None:
    assert code in PERMANENT_CODES


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_downstream_answers_that_may_pass_are_transient(code: grpc.StatusCode) -> None:
    assert code not in PERMANENT_CODES


def test_deterministic_exceptions_are_permanent_and_a_plain_job_error_is_not() -> None:
    for error in (ValueError("x"), TypeError("x"), KeyError("x"), ZeroDivisionError(), OverflowError()):
        assert is_permanent(error), error
    assert is_permanent(JobError("bad date", permanent=True))
    assert not is_permanent(JobError("this job always fails"))
    assert not is_permanent(RuntimeError("connection reset"))


def test_the_pause_between_attempts_grows_by_the_factor_up_to_the_cap() -> None:
    config = SchedulerConfig(retry_delay_s=0.5, retry_backoff_factor=2.0, retry_max_delay_s=3.0)
    assert [retry_delay_s(config, attempt) for attempt in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    flat = SchedulerConfig(retry_delay_s=0.5, retry_backoff_factor=1.0)
    assert retry_delay_s(flat, 5) == 0.5
