"""The scheduler's job lifecycle: attempts, retries, compare-and-set completion,
worker loss, cancellation and admin retry, each bumping the sequence."""

from __future__ import annotations

import pytest

from scheduler_svc.model import InvalidTransition, JobStatus, SchedulerJob


def _job(max_attempts: int = 2) -> SchedulerJob:
    return SchedulerJob(
        id="j1",
        owner_id="alice",
        definition="sleep",
        parameters={},
        max_attempts=max_attempts,
        timeout_s=10,
        create_time=0.0,
        update_time=0.0,
        dispatch_at=0.0,
    )


def _running(max_attempts: int = 2) -> SchedulerJob:
    job = _job(max_attempts)
    job.queue(1.0)
    assert job.start_attempt("w1", 2.0)
    return job


def test_every_change_bumps_the_sequence() -> None:
    job = _running()
    sequences = [job.sequence]
    job.report_progress(1, 50, 3.0)
    sequences.append(job.sequence)
    job.succeed(1, {"ok": True}, 4.0)
    sequences.append(job.sequence)
    assert sequences == [2, 3, 4] and job.status == JobStatus.SUCCEEDED


def test_only_the_current_attempt_can_finish_the_job_once() -> None:
    job = _running()
    assert job.succeed(1, {}, 3.0)
    assert not job.succeed(1, {}, 4.0)
    assert not job.fail(1, "late", 4.0, 0.0)
    assert job.status == JobStatus.SUCCEEDED and job.sequence == 3


def test_a_queued_job_awaits_its_work_item_until_an_attempt_starts() -> None:
    job = _job()
    job.dispatch_at = None
    assert job.queue(1.0) and job.dispatch_at == 1.0
    assert job.start_attempt("w1", 2.0) and job.dispatch_at is None


def test_a_failed_attempt_is_queued_again_while_attempts_are_left() -> None:
    job = _running(max_attempts=2)
    job.fail(1, "boom", 3.0, retry_delay_s=0.5)
    assert job.status == JobStatus.QUEUED and job.dispatch_at == 3.5 and job.error == "boom"
    job.start_attempt("w2", 4.0)
    job.fail(2, "boom again", 5.0, retry_delay_s=0.5)
    assert job.status == JobStatus.FAILED and job.attempt == 2 and job.dispatch_at is None


def test_a_redelivery_after_a_worker_died_starts_the_next_attempt() -> None:
    job = _running()
    assert job.start_attempt("w2", 5.0)
    assert job.attempt == 2 and job.attempts[0].error.startswith("the worker was lost")
    assert not job.succeed(1, {}, 6.0)
    assert job.succeed(2, {}, 6.0)


def test_a_running_job_is_flagged_and_a_waiting_one_cancelled_at_once() -> None:
    running = _running()
    assert running.request_cancel(3.0) and running.status == JobStatus.CANCELLING
    assert running.cancelled(1, 4.0) and running.status == JobStatus.CANCELLED
    waiting = _job()
    waiting.queue(1.0)
    assert waiting.request_cancel(2.0) and waiting.status == JobStatus.CANCELLED
    assert waiting.dispatch_at is None


def test_a_finished_job_cannot_be_cancelled() -> None:
    job = _running()
    job.succeed(1, {}, 3.0)
    with pytest.raises(InvalidTransition):
        job.request_cancel(4.0)


def test_retry_gives_a_failed_job_a_fresh_budget_and_counts_attempts_on() -> None:
    job = _running(max_attempts=1)
    job.fail(1, "boom", 3.0, 0.0)
    assert job.status == JobStatus.FAILED
    job.retry(4.0)
    assert job.status == JobStatus.QUEUED and job.attempts_left == 1
    assert job.start_attempt("w", 5.0) and job.attempt == 2


def test_retry_of_a_running_job_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        _running().retry(3.0)
