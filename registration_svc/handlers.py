"""Service layer of registration_svc: one function per use case, taking a command
and the store; state changes and their events commit in one transaction."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf import json_format
from pymongo.errors import DuplicateKeyError
from switchboard.events.v1 import job_events_pb2

from mesh.auth import Principal
from mesh.batching import DeferredWrites
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from mesh.events import Event, new_event, unpack
from mesh.jobs_catalogue import Catalogue, validate_parameters
from mesh.outbox import Outbox
from mesh.protos import set_timestamp
from mesh.store import Store, UnitOfWork
from registration_svc.model import Job, JobFinished, JobStatus, StatusChange
from registration_svc.repository import JobRepository

SOURCE = "registration_svc"
JOB_REGISTERED = "job.registered.v1"
JOB_CANCEL_REQUESTED = "job.cancel_requested.v1"
JOB_STATUS_CHANGED = "job.status_changed.v1"


@dataclass(frozen=True)
class SubmitJob:
    """A user asks to run a job of a catalogue definition."""

    owner_id: str
    definition: str
    parameters: dict[str, Any]
    idempotency_key: str
    run_at: float | None


@dataclass(frozen=True)
class CancelJob:
    """A user (or an admin) asks to cancel a job."""

    job_id: str
    principal: Principal


@dataclass
class Registration:
    """What the handlers need: the store, the outbox and the catalogue."""

    store: Store
    outbox: Outbox
    catalogue: Catalogue

    @property
    def jobs(self) -> JobRepository:
        return JobRepository(self.store.db)


def new_job(command: SubmitJob, catalogue: Catalogue) -> Job:
    """The job a submission asks for, its parameters checked against the catalogue
    (INVALID_ARGUMENT otherwise); nothing is stored yet."""
    definition = catalogue.get(command.definition)
    violations = Violations()
    if definition is None:
        violations.add("definition", f"unknown job definition {command.definition!r}")
        violations.raise_if_any()
    assert definition is not None
    parameters, problems = validate_parameters(definition, command.parameters)
    if problems:
        raise InvalidArgument(problems)
    now = time.time()
    return Job(
        id=str(uuid.uuid4()),
        owner_id=command.owner_id,
        definition=definition.name,
        parameters=parameters,
        idempotency_key=command.idempotency_key,
        max_attempts=definition.max_attempts,
        create_time=now,
        update_time=now,
        run_at=command.run_at,
    )


def insert_job(job: Job, deps: Registration) -> Job:
    """Store the job and its JobRegistered event, or return the job this user
    already submitted with the same idempotency key (the unique index decides)."""
    registered = _registered_event(job)  # built before the transaction: nothing but inserts in it

    def work(uow: UnitOfWork) -> None:
        JobRepository(uow.db).add(job, session=uow.session)
        deps.outbox.add(uow, registered)

    try:
        deps.store.transaction(work)
    except DuplicateKeyError:
        # The key was used before (or a concurrent retry won the race): answer with
        # that job. Not looked up first: a repeat is rare, a new job is the common case.
        existing = deps.jobs.by_key(job.owner_id, job.idempotency_key)
        if existing is None:
            raise
        return existing
    return job


def insert_jobs(jobs: list[Job], deps: Registration) -> list[Job]:
    """Store several new jobs and their events in one transaction (a group commit).
    A key used before fails the whole batch (BulkWriteError): the caller then
    stores them one by one through `insert_job`, which answers a repeat."""
    registered = [_registered_event(job) for job in jobs]

    def work(uow: UnitOfWork) -> list[Job]:
        JobRepository(uow.db).add_many(jobs, session=uow.session)
        deps.outbox.add_many(uow, registered)
        return jobs

    return deps.store.transaction(work)


def get_job(job_id: str, principal: Principal, deps: Registration) -> Job:
    """The job, if the caller owns it or is privileged; NOT_FOUND otherwise, so
    nobody learns which ids exist."""
    job = deps.jobs.get(job_id)
    if job is None or not principal.may_access([job.owner_id]):
        raise NotFound(f"job {job_id} not found")
    return job


def cancel_job(command: CancelJob, deps: Registration) -> Job:
    """Mark the job CANCELLING and ask the scheduler (JobCancelRequested)."""

    def work(uow: UnitOfWork) -> Job:
        repository = JobRepository(uow.db)
        job = repository.get(command.job_id, session=uow.session)
        if job is None or not command.principal.may_access([job.owner_id]):
            raise NotFound(f"job {command.job_id} not found")
        try:
            changed = job.request_cancel(time.time())
        except JobFinished as exc:
            raise FailedPrecondition(str(exc)) from exc
        if changed:
            repository.save(job, session=uow.session)
            deps.outbox.add(uow, _cancel_event(job, command.principal.user_id))
        return job

    return deps.store.transaction(work)


def apply_status_changed(uow: UnitOfWork, event: Event) -> None:
    """Inbox effect of JobStatusChanged: update the read model unless stale. The
    changes of one batch (one unit of work) are written together before it commits."""
    message = unpack(event, job_events_pb2.JobStatusChanged)
    _status_writes.add(uow, (message.job_id, _status_change(message)))


def newest_per_job(changes: list[tuple[str, StatusChange]]) -> dict[str, StatusChange]:
    """Each job's change with the highest sequence. Each is a full snapshot, so it
    alone leaves the read model as applying them all in order would; a budget
    (`max_attempts`) only an older change carried is kept."""
    newest: dict[str, StatusChange] = {}
    for job_id, change in changes:
        kept = newest.get(job_id)
        if kept is not None and kept.sequence >= change.sequence:
            continue
        if kept is not None and not change.max_attempts:
            change = replace(change, max_attempts=kept.max_attempts)
        newest[job_id] = change
    return newest


def _write_status_changes(uow: UnitOfWork, changes: list[tuple[str, StatusChange]]) -> None:
    # nothing applies to a job that is not ours (another registration database shares the exchange)
    repository, now = JobRepository(uow.db), time.time()
    repository.apply_changes(newest_per_job(changes), now, uow.session)
    repository.record_changes(changes, now, uow.session)  # each of them, for WatchJob


_status_writes: DeferredWrites[tuple[str, StatusChange]] = DeferredWrites(_write_status_changes)


def _status_change(message: job_events_pb2.JobStatusChanged) -> StatusChange:
    return StatusChange(
        sequence=message.sequence,
        status=JobStatus(message.status),
        progress=message.progress,
        result=json_format.MessageToDict(message.result) if message.HasField("result") else None,
        error=message.error,
        attempt=message.attempt,
        max_attempts=message.max_attempts,
    )


def _registered_event(job: Job) -> Event:
    message = job_events_pb2.JobRegistered(job_id=job.id, owner_id=job.owner_id, definition=job.definition)
    message.parameters.update(job.parameters)
    set_timestamp(message.create_time, job.create_time)
    set_timestamp(message.run_at, job.run_at)
    return new_event(JOB_REGISTERED, SOURCE, f"jobs/{job.id}", message)


def _cancel_event(job: Job, requested_by: str) -> Event:
    message = job_events_pb2.JobCancelRequested(
        job_id=job.id, owner_id=job.owner_id, requested_by=requested_by
    )
    message.request_time.FromNanoseconds(time.time_ns())
    return new_event(JOB_CANCEL_REQUESTED, SOURCE, f"jobs/{job.id}", message)
