"""The registration read model never moves a job backwards."""

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


def test_a_stale_or_repeated_status_change_is_ignored() -> None:
    job = _job()
    assert job.apply(_change(3, JobStatus.SUCCEEDED), 1.0)
    assert not job.apply(_change(2, JobStatus.RUNNING), 2.0)
    assert not job.apply(_change(3, JobStatus.RUNNING), 2.0)
    assert job.status == JobStatus.SUCCEEDED and job.sequence == 3


def test_a_cancel_request_shows_cancelling_until_the_scheduler_confirms() -> None:
    job = _job()
    assert job.request_cancel(1.0) and job.status == JobStatus.CANCELLING
    job.apply(_change(1, JobStatus.RUNNING), 2.0)
    assert job.status == JobStatus.CANCELLING
    job.apply(_change(2, JobStatus.CANCELLED), 3.0)
    assert job.status == JobStatus.CANCELLED
    assert not job.request_cancel(4.0)


def test_a_succeeded_job_cannot_be_cancelled() -> None:
    job = _job()
    job.apply(_change(1, JobStatus.SUCCEEDED), 1.0)
    with pytest.raises(JobFinished):
        job.request_cancel(2.0)
