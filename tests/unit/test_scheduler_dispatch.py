"""Where a changed job's work item comes from: the dispatcher after the commit when
it is due now, its durable timer when it is due later, and a cancelled waiting
job's timer is removed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from mesh.jobs_catalogue import Catalogue
from mesh.outbox import Outbox
from mesh.store import Store, UnitOfWork
from scheduler_svc.handlers import Scheduling
from scheduler_svc.model import JobStatus, SchedulerJob


class FakeTimers:
    def __init__(self) -> None:
        self.scheduled: dict[str, float] = {}
        self.cancelled: list[str] = []

    def schedule(self, key: str, run_at: float, payload: dict[str, Any]) -> None:
        self.scheduled[key] = run_at

    def cancel(self, key: str) -> None:
        self.cancelled.append(key)


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.hooks.append(callback)

    def commit(self) -> None:
        for hook in self.hooks:
            hook()


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def add(self, uow: Any, event: Any) -> None:
        self.events.append(event)


def _scheduling() -> tuple[Scheduling, FakeTimers, list[SchedulerJob]]:
    timers, dispatched = FakeTimers(), list[SchedulerJob]()
    deps = Scheduling(
        store=cast(Store, None),
        outbox=cast(Outbox, FakeOutbox()),
        catalogue=cast(Catalogue, None),
        timers=timers,
        dispatch=dispatched.append,
    )
    return deps, timers, dispatched


def _registered() -> SchedulerJob:
    return SchedulerJob("j1", "alice", "sleep", {}, 3, timeout_s=10, create_time=0, update_time=0)


def _running() -> SchedulerJob:
    job = _registered()
    job.queue(1.0)
    job.start_attempt("w1", 2.0)
    return job


def test_a_job_due_now_goes_to_the_dispatcher_only_after_the_commit() -> None:
    deps, timers, dispatched = _scheduling()
    job = _registered()
    job.queue(10.0)
    uow = FakeUnitOfWork()
    deps.recorded(cast(UnitOfWork, uow), job, JobStatus.REGISTERED, 10.0)
    assert dispatched == []
    uow.commit()
    assert dispatched == [job] and timers.scheduled == {}


def test_a_retry_after_a_delay_is_left_to_the_jobs_durable_timer() -> None:
    deps, timers, dispatched = _scheduling()
    job = _running()
    job.fail(1, "boom", 3.0, retry_delay_s=5.0)
    uow = FakeUnitOfWork()
    deps.recorded(cast(UnitOfWork, uow), job, JobStatus.RUNNING, 3.0)
    uow.commit()
    assert timers.scheduled == {"j1": 8.0} and dispatched == []


def test_a_process_without_a_dispatcher_hands_a_due_job_to_its_timer() -> None:
    deps, timers, _ = _scheduling()
    deps.dispatch = None
    job = _running()
    job.fail(1, "boom", 3.0, retry_delay_s=0.0)
    deps.recorded(cast(UnitOfWork, FakeUnitOfWork()), job, JobStatus.RUNNING, 3.0)
    assert timers.scheduled == {"j1": 3.0}


def test_cancelling_a_waiting_job_removes_its_timer_after_the_commit() -> None:
    deps, timers, _ = _scheduling()
    job = _registered()
    job.request_cancel(4.0)
    uow = FakeUnitOfWork()
    deps.recorded(cast(UnitOfWork, uow), job, JobStatus.REGISTERED, 4.0)
    assert timers.cancelled == []
    uow.commit()
    assert timers.cancelled == ["j1"]
