"""The registration read model's rules: what a status change shows, and what can
still be cancelled."""

from __future__ import annotations

import pytest

from registration_svc.model import Job, JobFinished, JobStatus, StatusChange


def _job() -> Job:
    return Job(
        id="j1",
        owner_id="alice",
        definition="noop",
        parameters={},
        idempotency_key="k",
        max_attempts=1,
        create_time=0.0,
        update_time=0.0,
    )


def _change(sequence: int, status: JobStatus) -> StatusChange:
    return StatusChange(sequence, status, 0.0, None, "", 1, 1)


def test_a_pending_cancel_shows_cancelling_until_the_scheduler_confirms_an_end() -> None:
    assert _change(1, JobStatus.RUNNING).shown_status(cancel_requested=True) == JobStatus.CANCELLING
    assert _change(2, JobStatus.CANCELLED).shown_status(cancel_requested=True) == JobStatus.CANCELLED
    assert _change(2, JobStatus.SUCCEEDED).shown_status(cancel_requested=True) == JobStatus.SUCCEEDED
    assert _change(1, JobStatus.RUNNING).shown_status(cancel_requested=False) == JobStatus.RUNNING


def test_a_cancel_is_asked_once() -> None:
    job = _job()
    assert job.request_cancel(1.0) and job.status == JobStatus.CANCELLING
    assert not job.request_cancel(2.0)


def test_a_succeeded_job_cannot_be_cancelled() -> None:
    job = _job()
    job.status = JobStatus.SUCCEEDED
    with pytest.raises(JobFinished):
        job.request_cancel(2.0)
