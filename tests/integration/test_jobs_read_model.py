"""registration_svc's read model in the store (embedded MongoDB): status changes
apply as conditional updates that never move a job backwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from mesh.store import Document
from registration_svc.model import Job, JobStatus, StatusChange
from registration_svc.repository import JobRepository
from tests.support.processes import EmbeddedMongo


@pytest.fixture
def jobs(mongo: EmbeddedMongo, isolation: dict[str, str]) -> Iterator[JobRepository]:
    client: MongoClient[Document] = MongoClient(mongo.url)
    repository = JobRepository(client[isolation["MONGO_DB"]])
    repository.ensure_indexes()
    repository.add(Job("j1", "alice", "noop", {}, "k", max_attempts=3, create_time=1, update_time=1))
    yield repository
    client.close()


def _change(sequence: int, status: JobStatus, progress: float = 0.0) -> StatusChange:
    return StatusChange(sequence, status, progress, None, "", 1, 3)


def test_a_stale_or_repeated_status_change_is_ignored(jobs: JobRepository) -> None:
    assert jobs.apply_change("j1", _change(3, JobStatus.SUCCEEDED, 100.0), 2.0)
    assert not jobs.apply_change("j1", _change(2, JobStatus.RUNNING, 50.0), 3.0)
    assert not jobs.apply_change("j1", _change(3, JobStatus.RUNNING), 3.0)
    job = jobs.get("j1")
    assert job is not None
    assert (job.status, job.sequence, job.progress, job.update_time) == (JobStatus.SUCCEEDED, 3, 100.0, 2.0)


def test_a_cancel_request_shows_cancelling_until_the_scheduler_confirms(jobs: JobRepository) -> None:
    job = jobs.get("j1")
    assert job is not None and job.request_cancel(2.0)
    jobs.save(job)

    assert jobs.apply_change("j1", _change(1, JobStatus.RUNNING), 3.0)
    running = jobs.get("j1")
    assert running is not None and running.status == JobStatus.CANCELLING and running.attempt == 1

    assert jobs.apply_change("j1", _change(2, JobStatus.CANCELLED), 4.0)
    cancelled = jobs.get("j1")
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED


def test_a_change_for_a_job_of_another_service_applies_to_nothing(jobs: JobRepository) -> None:
    assert not jobs.apply_change("elsewhere", _change(1, JobStatus.RUNNING), 2.0)
    assert not jobs.apply_change("elsewhere", _change(2, JobStatus.SUCCEEDED), 2.0)
