"""Which status events a job's run publishes: the claim (RUNNING) commits before
the job runs but is announced only once the attempt reports progress or outlasts
a heartbeat, so a job that ends within one publishes QUEUED, then its end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pymongo import MongoClient
from switchboard.events.v1 import job_events_pb2
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.scheduler.v1 import scheduler_service_pb2 as sch

from mesh.events import from_bytes, unpack
from mesh.store import Document
from tests.integration.test_jobs_support import JobsMesh
from tests.support.processes import EmbeddedMongo, ServiceProcess

HEARTBEAT_S = 3.0  # a no-op ends well within it; the sleep below outlasts it


@pytest.fixture
def mesh(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> Iterator[JobsMesh]:
    jobs = JobsMesh.isolated(start_service, token, isolation)
    jobs.start_registration()
    jobs.start_scheduler(HEARTBEAT_INTERVAL_S=str(HEARTBEAT_S), WORKER_LEASE_S=str(5 * HEARTBEAT_S))
    yield jobs
    jobs.close()


def test_a_quick_job_publishes_no_running_event_and_a_longer_one_announces_it(
    mesh: JobsMesh, mongo: EmbeddedMongo
) -> None:
    alice = mesh.users("alice")
    quick = alice.submit("noop")
    longer = alice.submit("sleep", seconds=2 * HEARTBEAT_S, steps=1)  # no progress report before its end
    for job in (quick, longer):
        alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED)

    published = _published_statuses(mongo, mesh.databases["scheduler"])
    assert published[quick.id] == [sch.JOB_STATUS_QUEUED, sch.JOB_STATUS_SUCCEEDED]
    assert published[longer.id] == [sch.JOB_STATUS_QUEUED, sch.JOB_STATUS_RUNNING, sch.JOB_STATUS_SUCCEEDED]
    assert alice.get(quick.id).attempt == alice.get(longer.id).attempt == 1


def _published_statuses(mongo: EmbeddedMongo, database: str) -> dict[str, list[int]]:
    """Each job's JobStatusChanged statuses in the scheduler's outbox, by sequence."""
    client: MongoClient[Document] = MongoClient(mongo.url)
    try:
        rows = client[database].outbox.find({"type": "job.status_changed.v1"})
        messages = [unpack(from_bytes(row["payload"]), job_events_pb2.JobStatusChanged) for row in rows]
    finally:
        client.close()
    published: dict[str, list[int]] = {}
    for message in sorted(messages, key=lambda m: m.sequence):
        published.setdefault(message.job_id, []).append(message.status)
    return published
