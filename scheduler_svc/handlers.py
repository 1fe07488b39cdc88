"""Service layer of scheduler_svc: inbox effects of the registration events,
admin use cases, and the worker's transitions. Each changes one job in one
transaction together with its JobStatusChanged outbox row; a worker's claim,
which publishes nothing, is one conditional single-document write (`claim`)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from switchboard.events.v1 import job_events_pb2

from mesh.batching import DeferredWrites
from mesh.errors import FailedPrecondition, NotFound
from mesh.events import Event, new_event, unpack
from mesh.jobs_catalogue import (
    Catalogue,
    JobDefinition,
    parameters_from_struct,
    validate_parameters,
)
from mesh.outbox import Outbox
from mesh.protos import set_timestamp
from mesh.store import Store, UnitOfWork
from scheduler_svc.model import InvalidTransition, JobStatus, SchedulerJob
from scheduler_svc.repository import JobRepository

SOURCE = "scheduler_svc"
JOB_REGISTERED = "job.registered.v1"
JOB_CANCEL_REQUESTED = "job.cancel_requested.v1"
JOB_STATUS_CHANGED = "job.status_changed.v1"
# the work item on the work queue (never on the events exchange): a QUEUED snapshot
JOB_DISPATCHED = "scheduler.job_dispatched.v1"


class JobNotYetKnown(Exception):
    """A cancel request overtook its JobRegistered: the bus retries it later."""


class JobTimers(Protocol):
    """What the handlers use of mesh.timers.DurableTimers (keyed by job id)."""

    def schedule(self, key: str, run_at: float, payload: dict[str, Any]) -> None: ...

    def cancel(self, key: str) -> None: ...


@dataclass
class Scheduling:
    """What the handlers need: the store, the outbox, the catalogue, the jobs'
    durable timers, and `dispatch`, which hands a committed QUEUED job to this
    process's dispatcher (None in a process without one: its timer then fires at once)."""

    store: Store
    outbox: Outbox
    catalogue: Catalogue
    timers: JobTimers
    dispatch: Callable[[SchedulerJob], None] | None = None

    @property
    def jobs(self) -> JobRepository:
        return JobRepository(self.store.db)

    def change(
        self,
        job_id: str,
        mutate: Callable[[SchedulerJob, float], Any],
        *,
        announce_running: bool = True,
        known: SchedulerJob | None = None,
    ) -> tuple[SchedulerJob, Any]:
        """Load, mutate and save one job in a transaction; when its sequence moved,
        the JobStatusChanged row commits with it, except for a job now RUNNING when
        not `announce_running` (a worker's claim: the runner announces the attempt
        only if it outlasts a heartbeat, so a quick job costs no RUNNING event).
        With `known`, the job as this process last wrote it (a worker ending the
        attempt it claimed), nothing is read: the change is saved only if the job's
        sequence is still the known one, else it starts over with a read.
        Returns the job and `mutate`'s result."""

        def work(uow: UnitOfWork) -> tuple[SchedulerJob, Any]:
            repository = JobRepository(uow.db)
            job = copy.deepcopy(known) if known else repository.get(job_id, session=uow.session)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            before = (job.sequence, job.status)
            now = time.time()
            outcome = mutate(job, now)
            if known and (
                job.sequence == before[0] or not repository.replace_if_sequence(job, before[0], uow)
            ):
                raise _Superseded  # the job moved on since this process wrote it: read it
            if job.sequence != before[0]:
                if not known:
                    repository.save(job, session=uow.session)
                quiet = not announce_running and job.status == JobStatus.RUNNING
                self.recorded(uow, job, before[1], now, publish=not quiet)
            return job, outcome

        try:
            return self.store.transaction(work)
        except _Superseded:
            return self.change(job_id, mutate, announce_running=announce_running)

    def claim(self, job_id: str, mutate: Callable[[SchedulerJob, float], Any]) -> tuple[SchedulerJob, Any]:
        """`change` for a worker's claim (`announce_running=False`) with no transaction
        when none is needed: a claim that leaves the job RUNNING writes no event and
        asks nothing of the timers or the dispatcher, so it is one single-document
        replace, conditional on the sequence read (another change bumps it: read
        again). The only write that leaves the sequence alone, the dispatcher's
        clearing of `dispatch_at`, cannot be lost: a RUNNING job has none. A claim that
        changes nothing writes nothing; any other outcome goes through `change`."""
        jobs = self.jobs
        while True:
            job = jobs.get(job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            seen = job.sequence
            outcome = mutate(job, time.time())
            if job.sequence == seen:
                return job, outcome
            if job.status != JobStatus.RUNNING or job.dispatch_at is not None:
                return self.change(job_id, mutate, announce_running=False)
            if jobs.replace_if_sequence(job, seen):
                return job, outcome

    def recorded(
        self,
        uow: UnitOfWork,
        job: SchedulerJob,
        previous: JobStatus | None,
        now: float,
        *,
        publish: bool = True,
    ) -> None:
        """In the job's transaction, after saving it: its status event (unless not
        `publish`), and what its new state asks of the timers and the dispatcher."""
        if publish:
            self.outbox.add(uow, status_event(job))
        if job.dispatch_at is not None:
            if job.dispatch_at <= now and self.dispatch is not None:
                dispatch, snapshot = self.dispatch, job
                uow.after_commit(lambda: dispatch(snapshot))
            else:  # before the commit, so a committed job always has its timer (a stray one finds nothing)
                self.timers.schedule(job.id, job.dispatch_at, {"job_id": job.id})
        elif job.status == JobStatus.CANCELLED and previous in WAITING:
            uow.after_commit(lambda: self.timers.cancel(job.id))


WAITING = (JobStatus.REGISTERED, JobStatus.QUEUED)  # may have a timer pending


class _Superseded(Exception):
    """A job changed since this process last wrote it (Scheduling.change's `known`)."""


# ------------------------------------------------------------------ inbox effects


def on_job_registered(deps: Scheduling) -> Callable[[UnitOfWork, Event], None]:
    """Store the registered job, QUEUED when due (its work item goes out after the
    commit), else REGISTERED with a timer. The jobs and events of one inbox batch
    are inserted together before it commits."""
    registrations: DeferredWrites[tuple[SchedulerJob, Event | None]] = DeferredWrites(
        lambda uow, registered: _insert_registered(uow, registered, deps.outbox)
    )

    def effect(uow: UnitOfWork, event: Event) -> None:
        message = unpack(event, job_events_pb2.JobRegistered)
        now = time.time()
        run_at = message.run_at.ToNanoseconds() / 1e9 if message.HasField("run_at") else None
        definition = deps.catalogue.get(message.definition)
        job = SchedulerJob(
            id=message.job_id,
            owner_id=message.owner_id,
            definition=message.definition,
            parameters=parameters_from_struct(message.parameters),
            max_attempts=definition.max_attempts if definition else 1,
            timeout_s=definition.timeout_s if definition else 0.0,
            create_time=message.create_time.ToNanoseconds() / 1e9 or now,
            update_time=now,
            run_at=run_at,
        )
        refused = _refusal(definition, message.definition, job.parameters)
        if refused:  # the two services' catalogues disagree: fail it visibly, never run it
            job.error = refused
            job.status = JobStatus.FAILED
            job.end_time = now
            job.sequence = 1
        elif run_at is None or run_at <= now:
            job.queue(now)  # due now: queued in this transaction, no separate turn
        # A job registered before (a replayed event under a new id) makes the insert
        # fail with DuplicateKeyError: the batch, then that event alone, fails.
        if job.sequence:
            deps.recorded(uow, job, None, now, publish=False)
            registrations.add(uow, (job, status_event(job)))
        else:
            assert run_at is not None
            registrations.add(uow, (job, None))
            deps.timers.schedule(job.id, run_at, {"job_id": job.id})

    return effect


def _refusal(definition: JobDefinition | None, name: str, parameters: dict[str, Any]) -> str:
    """Why the scheduler will not run a registered job ('' when it will): the same
    checks as SubmitJob's, in case the two services' catalogues differ. A refused
    job fails at once with INVALID_ARGUMENT in its error, and is never attempted."""
    if definition is None:
        return f"unknown job definition {name!r}"
    _, problems = validate_parameters(definition, parameters)
    if not problems:
        return ""
    return "INVALID_ARGUMENT: " + "; ".join(f"{p.field}: {p.description}" for p in problems)


def _insert_registered(
    uow: UnitOfWork, registered: list[tuple[SchedulerJob, Event | None]], outbox: Outbox
) -> None:
    """The jobs one inbox batch registered, and their status events: two inserts."""
    JobRepository(uow.db).add_many([job for job, _ in registered], session=uow.session)
    outbox.add_many(uow, [event for _, event in registered if event is not None])


def on_job_cancel_requested(deps: Scheduling) -> Callable[[UnitOfWork, Event], None]:
    def effect(uow: UnitOfWork, event: Event) -> None:
        message = unpack(event, job_events_pb2.JobCancelRequested)
        repository = JobRepository(uow.db)
        job = repository.get(message.job_id, session=uow.session)
        if job is None:
            raise JobNotYetKnown(f"job {message.job_id} not registered yet")
        previous, now = job.status, time.time()
        try:
            changed = job.request_cancel(now)
        except InvalidTransition:
            changed = False  # it finished first: its final status already went out
        if changed:
            repository.save(job, session=uow.session)
            deps.recorded(uow, job, previous, now)

    return effect


def on_timer(job_id: str, deps: Scheduling) -> None:
    """A job's durable timer fired (its run_at, or the end of a retry's delay): a
    REGISTERED job is queued, a QUEUED one whose work item is still to go out is
    dispatched. Idempotent: a job in any other state (cancelled, already running) is left alone."""
    try:
        job, queued = deps.change(job_id, lambda job, now: job.queue(now))
    except NotFound:
        return  # its registration was rolled back after the timer was set
    if not queued and job.status == JobStatus.QUEUED and job.dispatch_at is not None and deps.dispatch:
        deps.dispatch(job)


# ------------------------------------------------------------------------ admin


def cancel_job(job_id: str, deps: Scheduling) -> SchedulerJob:
    def mutate(job: SchedulerJob, now: float) -> None:
        try:
            job.request_cancel(now)
        except InvalidTransition as exc:
            raise FailedPrecondition(str(exc)) from exc

    return deps.change(job_id, mutate)[0]


def retry_job(job_id: str, deps: Scheduling) -> SchedulerJob:
    def mutate(job: SchedulerJob, now: float) -> None:
        try:
            job.retry(now)
        except InvalidTransition as exc:
            raise FailedPrecondition(str(exc)) from exc

    return deps.change(job_id, mutate)[0]


def get_job(job_id: str, deps: Scheduling) -> SchedulerJob:
    job = deps.jobs.get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


# ---------------------------------------------------------------------- events


def status_event(job: SchedulerJob) -> Event:
    return new_event(JOB_STATUS_CHANGED, SOURCE, f"jobs/{job.id}", status_message(job))


def dispatch_event(job: SchedulerJob) -> Event:
    return new_event(JOB_DISPATCHED, SOURCE, f"jobs/{job.id}", status_message(job))


def status_message(job: SchedulerJob) -> job_events_pb2.JobStatusChanged:
    message = job_events_pb2.JobStatusChanged(
        job_id=job.id,
        owner_id=job.owner_id,
        definition=job.definition,
        sequence=job.sequence,
        status=int(job.status),  # type: ignore[arg-type]
        progress=job.progress,
        error=job.error,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        worker_id=job.worker_id if job.status in (JobStatus.RUNNING, JobStatus.CANCELLING) else "",
    )
    if job.result is not None:
        message.result.update(job.result)
    set_timestamp(message.change_time, job.update_time)
    return message
