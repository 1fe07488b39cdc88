"""The job services' batched writes against the embedded MongoDB, in process:
SubmitJob's group commit, a batch of JobStatusChanged applied to the read model,
a batch of JobRegistered stored by the scheduler, and a worker's claim without a
transaction racing another change."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from switchboard.events.v1 import job_events_pb2

from mesh.config import MeshConfig
from mesh.events import Event, from_bytes, new_event, unpack
from mesh.inbox import Inbox
from mesh.jobs_catalogue import DEFAULT_CATALOGUE_FILE, Catalogue, load_catalogue
from mesh.outbox import Outbox
from mesh.store import Store
from registration_svc import handlers as registration
from registration_svc.model import Job, JobStatus
from registration_svc.repository import JobRepository
from registration_svc.submits import submit_batcher
from scheduler_svc import handlers as scheduler
from scheduler_svc.model import JobStatus as SchedulerStatus
from scheduler_svc.model import SchedulerJob
from scheduler_svc.repository import JobRepository as SchedulerRepository


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(DEFAULT_CATALOGUE_FILE)


@pytest.fixture
def transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the store's transactions (one entry per `Store.transaction` call)."""
    calls: list[int] = []
    original = store.transaction

    def counted(work: Callable[..., Any], attempts: int = 5) -> Any:
        calls.append(1)
        return original(work, attempts)

    monkeypatch.setattr(store, "transaction", counted)
    return calls


def _outbox(store: Store, config: MeshConfig) -> Outbox:
    outbox = Outbox(store, config)
    outbox.ensure_indexes()  # the collection exists before a transaction writes to it
    return outbox


def _events(store: Store, event_type: str) -> list[Event]:
    rows = store.db.outbox.find({"type": event_type}).sort("created_at", 1)
    return [from_bytes(row["payload"]) for row in rows]


def _status_events(store: Store) -> list[job_events_pb2.JobStatusChanged]:
    events = _events(store, scheduler.JOB_STATUS_CHANGED)
    return [unpack(event, job_events_pb2.JobStatusChanged) for event in events]


# registration: SubmitJob's group commit ------------------------------------------------


@pytest.fixture
def registration_deps(store: Store, config: MeshConfig, catalogue: Catalogue) -> registration.Registration:
    deps = registration.Registration(store, _outbox(store, config), catalogue)
    deps.jobs.ensure_indexes()
    return deps


def _new_job(deps: registration.Registration, key: str = "") -> Job:
    command = registration.SubmitJob("alice", "noop", {}, key or uuid.uuid4().hex, None)
    return registration.new_job(command, deps.catalogue)


def _submit_together(deps: registration.Registration, jobs: list[Job]) -> list[Job]:
    batch = [(job, Future[Job]()) for job in jobs]
    submit_batcher(deps, max_batch=100).commit(batch)
    return [future.result(timeout=0) for _, future in batch]


def test_submissions_batched_together_share_one_transaction_and_each_gets_its_job_and_event(
    registration_deps: registration.Registration, transactions: list[int]
) -> None:
    jobs = [_new_job(registration_deps) for _ in range(5)]
    stored = _submit_together(registration_deps, jobs)

    assert [job.id for job in stored] == [job.id for job in jobs]
    assert len(transactions) == 1
    assert all(registration_deps.jobs.get(job.id) is not None for job in jobs)
    registered = _events(registration_deps.store, registration.JOB_REGISTERED)
    assert sorted(e.subject for e in registered) == sorted(f"jobs/{job.id}" for job in jobs)


def test_a_repeated_idempotency_key_in_a_batch_answers_the_job_stored_first(
    registration_deps: registration.Registration,
) -> None:
    earlier = registration.insert_job(_new_job(registration_deps, "used-before"), registration_deps)
    again, twice, fresh = (
        _new_job(registration_deps, "used-before"),
        _new_job(registration_deps, "twice"),
        _new_job(registration_deps),
    )
    stored = _submit_together(registration_deps, [again, twice, fresh, _new_job(registration_deps, "twice")])

    assert stored[0].id == earlier.id
    assert stored[1].id == stored[3].id == twice.id
    assert stored[2].id == fresh.id
    owners_jobs = registration_deps.store.db.jobs.count_documents({"owner_id": "alice"})
    assert owners_jobs == 3
    assert len(_events(registration_deps.store, registration.JOB_REGISTERED)) == 3


# registration: a batch of status changes -----------------------------------------------


def _status_changed(job_id: str, sequence: int, status: SchedulerStatus, **fields: Any) -> Event:
    message = job_events_pb2.JobStatusChanged(
        job_id=job_id, owner_id="alice", sequence=sequence, status=int(status), max_attempts=1, **fields
    )
    return new_event(registration.JOB_STATUS_CHANGED, "test", f"jobs/{job_id}", message)


@pytest.fixture
def read_model(store: Store, config: MeshConfig) -> Iterator[tuple[JobRepository, Inbox]]:
    jobs = JobRepository(store.db)
    jobs.ensure_indexes()
    for job_id in ("j1", "j2"):
        jobs.add(Job(job_id, "alice", "noop", {}, job_id, max_attempts=1, create_time=1, update_time=1))
    yield jobs, Inbox(store, config)


def test_status_changes_of_one_job_in_one_batch_leave_the_newest_whatever_their_order(
    read_model: tuple[JobRepository, Inbox], transactions: list[int]
) -> None:
    jobs, inbox = read_model
    batch = [
        _status_changed("j1", 2, SchedulerStatus.RUNNING, attempt=1),
        _status_changed("j1", 3, SchedulerStatus.SUCCEEDED, attempt=1, progress=100.0),
        _status_changed("j2", 1, SchedulerStatus.QUEUED),
        _status_changed("j1", 1, SchedulerStatus.QUEUED),
    ]
    handled = inbox.handle_batch(batch, registration.apply_status_changed)

    assert all(h.applied and h.error is None for h in handled)
    assert len(transactions) == 1
    done, queued = jobs.get("j1"), jobs.get("j2")
    assert done is not None and (done.status, done.sequence, done.progress) == (JobStatus.SUCCEEDED, 3, 100.0)
    assert queued is not None and (queued.status, queued.sequence) == (JobStatus.QUEUED, 1)


def test_a_batch_of_older_status_changes_never_moves_a_job_backwards(
    read_model: tuple[JobRepository, Inbox],
) -> None:
    jobs, inbox = read_model
    inbox.handle_batch(
        [_status_changed("j1", 4, SchedulerStatus.SUCCEEDED)], registration.apply_status_changed
    )
    late = [
        _status_changed("j1", 2, SchedulerStatus.RUNNING),
        _status_changed("j1", 3, SchedulerStatus.RUNNING),
        _status_changed("j1", 4, SchedulerStatus.RUNNING),  # the same sequence again
    ]
    inbox.handle_batch(late, registration.apply_status_changed)

    job = jobs.get("j1")
    assert job is not None and (job.status, job.sequence) == (JobStatus.SUCCEEDED, 4)


# scheduler: a batch of registrations, and the claim ------------------------------------


class FakeTimers:
    def __init__(self) -> None:
        self.scheduled: dict[str, float] = {}

    def schedule(self, key: str, run_at: float, payload: dict[str, Any]) -> None:
        self.scheduled[key] = run_at

    def cancel(self, key: str) -> None:
        self.scheduled.pop(key, None)


@pytest.fixture
def scheduling(
    store: Store, config: MeshConfig, catalogue: Catalogue
) -> tuple[scheduler.Scheduling, list[str]]:
    dispatched: list[str] = []
    deps = scheduler.Scheduling(
        store, _outbox(store, config), catalogue, FakeTimers(), dispatch=lambda job: dispatched.append(job.id)
    )
    deps.jobs.ensure_indexes()
    return deps, dispatched


def _registered(job_id: str, run_at: float | None = None) -> Event:
    message = job_events_pb2.JobRegistered(job_id=job_id, owner_id="alice", definition="noop")
    if run_at is not None:
        message.run_at.FromNanoseconds(int(run_at * 1e9))
    return new_event(scheduler.JOB_REGISTERED, "test", f"jobs/{job_id}", message)


def test_jobs_registered_in_one_batch_are_stored_in_one_transaction_each_with_its_event(
    store: Store,
    config: MeshConfig,
    scheduling: tuple[scheduler.Scheduling, list[str]],
    transactions: list[int],
) -> None:
    deps, dispatched = scheduling
    later = 4102444800.0  # 2100-01-01: waits for its timer
    batch = [_registered("a"), _registered("b"), _registered("later", run_at=later), _registered("c")]

    handled = Inbox(store, config).handle_batch(batch, scheduler.on_job_registered(deps))

    assert all(h.applied and h.error is None for h in handled)
    assert len(transactions) == 1
    statuses = {job_id: deps.jobs.get(job_id) for job_id in ("a", "b", "c", "later")}
    assert {k: v.status for k, v in statuses.items() if v} == {
        "a": SchedulerStatus.QUEUED,
        "b": SchedulerStatus.QUEUED,
        "c": SchedulerStatus.QUEUED,
        "later": SchedulerStatus.REGISTERED,
    }
    events = _status_events(store)
    assert sorted((m.job_id, m.status) for m in events) == [(j, int(SchedulerStatus.QUEUED)) for j in "abc"]
    assert dispatched == ["a", "b", "c"]
    assert isinstance(deps.timers, FakeTimers) and deps.timers.scheduled == {"later": later}


def _store_queued(store: Store, job_id: str) -> None:
    job = SchedulerJob(job_id, "alice", "noop", {}, max_attempts=1, timeout_s=5, create_time=1, update_time=1)
    job.queue(2.0)
    SchedulerRepository(store.db).add(job)


def test_a_claim_racing_a_cancel_reads_the_job_again_and_the_cancel_stands(
    store: Store, scheduling: tuple[scheduler.Scheduling, list[str]]
) -> None:
    deps, _ = scheduling
    _store_queued(store, "j1")
    seen: list[SchedulerStatus] = []

    def start_queued(current: SchedulerJob, now: float) -> bool | None:
        if not seen:  # between the claim's read and its write, the job is cancelled
            scheduler.cancel_job(current.id, deps)
        seen.append(current.status)
        return current.start_attempt("w1", now) if current.status == SchedulerStatus.QUEUED else None

    claimed, started = deps.claim("j1", start_queued)

    assert seen == [SchedulerStatus.QUEUED, SchedulerStatus.CANCELLED]
    assert started is None and claimed.status == SchedulerStatus.CANCELLED
    stored = deps.jobs.get("j1")
    assert stored is not None and (stored.status, stored.attempt) == (SchedulerStatus.CANCELLED, 0)


def test_a_claim_that_starts_the_job_writes_no_status_event(
    store: Store, scheduling: tuple[scheduler.Scheduling, list[str]]
) -> None:
    deps, _ = scheduling
    _store_queued(store, "j2")

    claimed, started = deps.claim("j2", lambda current, now: current.start_attempt("w1", now))

    assert started is True
    stored = deps.jobs.get("j2")
    assert stored is not None and (stored.status, stored.attempt) == (SchedulerStatus.RUNNING, 1)
    assert stored.sequence == claimed.sequence == 2
    assert _status_events(store) == []


def _claimed(store: Store, deps: scheduler.Scheduling, job_id: str) -> SchedulerJob:
    job = SchedulerJob(job_id, "alice", "noop", {}, max_attempts=1, timeout_s=5, create_time=1, update_time=1)
    job.queue(2.0)
    SchedulerRepository(store.db).add(job)
    claimed, started = deps.claim(job_id, lambda current, now: current.start_attempt("w1", now))
    assert started
    return claimed


def test_ending_an_attempt_unchanged_since_its_claim_saves_it_with_its_event(
    store: Store, scheduling: tuple[scheduler.Scheduling, list[str]]
) -> None:
    deps, _ = scheduling
    claimed = _claimed(store, deps, "j3")

    ended, applied = deps.change("j3", lambda job, now: job.succeed(1, {"ok": True}, now), known=claimed)

    assert applied and ended.status == SchedulerStatus.SUCCEEDED
    stored = deps.jobs.get("j3")
    assert stored is not None and (stored.status, stored.sequence, stored.result) == (
        SchedulerStatus.SUCCEEDED,
        3,
        {"ok": True},
    )
    published = _status_events(store)
    assert [(m.sequence, m.status) for m in published] == [(3, int(SchedulerStatus.SUCCEEDED))]


def test_ending_an_attempt_that_changed_since_its_claim_reads_it_again_and_keeps_the_change(
    store: Store, scheduling: tuple[scheduler.Scheduling, list[str]]
) -> None:
    deps, _ = scheduling
    claimed = _claimed(store, deps, "j4")
    scheduler.cancel_job("j4", deps)  # CANCELLING since the claim: the worker's copy is stale

    ended, applied = deps.change("j4", lambda job, now: job.succeed(1, {}, now), known=claimed)

    assert applied
    stored = deps.jobs.get("j4")
    assert stored is not None and stored.cancel_requested
    assert (
        (stored.status, stored.sequence) == (ended.status, ended.sequence) == (SchedulerStatus.SUCCEEDED, 4)
    )
    published = _status_events(store)
    assert sorted((m.sequence, m.status) for m in published) == [
        (3, int(SchedulerStatus.CANCELLING)),
        (4, int(SchedulerStatus.SUCCEEDED)),
    ]
