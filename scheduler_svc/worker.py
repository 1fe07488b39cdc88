"""Job workers: consume the work queue (prefetch 1, ack only after the attempt's
outcome committed), run the job with heartbeats, cancellation polling and a
timeout, and record every transition through the scheduler's handlers. The claim
(RUNNING) commits before the job runs, but its event goes out only once the job
reports progress or outlasts a heartbeat: a quick job publishes QUEUED, then its end.

Runs inside scheduler_svc as a pool of consumer threads, or alone:
`python -m scheduler_svc.worker` (so a worker can die mid-job without the
scheduler: its unacked delivery returns to the queue and another worker runs
the next attempt)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError
from switchboard.events.v1 import job_events_pb2

from mesh.bus import Publisher, WorkQueueConsumer
from mesh.errors import NotFound
from mesh.events import Event, unpack
from mesh.jobs_catalogue import load_catalogue
from mesh.outbox import Outbox, OutboxRelay
from mesh.store import Store
from mesh.telemetry import configure_logging
from mesh.timers import DurableTimers
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.handlers import Scheduling
from scheduler_svc.jobs import KINDS, JobCancelled, JobContext, JobTimedOut, is_permanent
from scheduler_svc.model import InvalidTransition, JobStatus, SchedulerJob
from scheduler_svc.timers import CALLBACK_REF, NAMESPACE

log = logging.getLogger(__name__)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)


@dataclass
class Outcome:
    """How one attempt ended."""

    result: dict[str, Any] | None = None
    error: str = ""
    cancelled: bool = False
    permanent: bool = False  # the error rules out a retry (scheduler_svc.jobs.is_permanent)


class JobRunner:
    """Handles one work item at a time on the calling (consumer) thread."""

    def __init__(self, deps: Scheduling, config: SchedulerConfig) -> None:
        self.deps = deps
        self.config = config
        self.stopping = threading.Event()

    def handle(self, event: Event) -> None:
        job_id = unpack(event, job_events_pb2.JobStatusChanged).job_id
        job = self._claim(job_id, _worker_id())
        if job is not None:
            self._finish(job, self._run(job))

    def _claim(self, job_id: str, worker_id: str) -> SchedulerJob | None:
        """Start the next attempt, or None when there is nothing to run (a duplicate
        item, or a job that ended). A QUEUED job (the usual case) takes one
        transaction. A RUNNING job whose worker still beats is waited for: its item
        may be a duplicate, or that worker may yet die."""

        def start_queued(current: SchedulerJob, now: float) -> bool | None:
            return current.start_attempt(worker_id, now) if current.status == JobStatus.QUEUED else None

        try:
            claimed, started = self.deps.claim(job_id, start_queued)
        except NotFound:
            return None
        if started is not None:
            return claimed if started else None
        while True:
            job = self.deps.jobs.get(job_id)
            if job is None or job.status not in ACTIVE:
                return None
            if job.status != JobStatus.QUEUED and self._worker_alive(job):
                if self.stopping.wait(self.config.heartbeat_interval_s):
                    raise RuntimeError("worker stopping")  # the item goes back through the retry queue
                continue
            seen = job.sequence

            def start(current: SchedulerJob, now: float, seen: int = seen) -> bool | None:
                if current.sequence != seen:
                    return None  # changed under us: look again
                try:
                    return current.start_attempt(worker_id, now)
                except InvalidTransition:
                    return None

            job, started = self.deps.claim(job_id, start)
            if started is None:
                continue
            return job if started else None

    def _worker_alive(self, job: SchedulerJob) -> bool:
        beat = self.deps.jobs.last_beat(job.id)
        fresh_since = time.time() - self.config.worker_lease_s
        if beat is not None and int(beat["attempt"]) == job.attempt:
            return float(beat["at"]) > fresh_since
        # this attempt has not beaten yet (the first beat comes a heartbeat after its start)
        return job.start_time is not None and job.start_time > fresh_since

    def _run(self, job: SchedulerJob) -> Outcome:
        definition = self.deps.catalogue.get(job.definition)
        implementation = KINDS.get(definition.kind) if definition else None
        if definition is None or implementation is None:
            return Outcome(error=f"no implementation for job definition {job.definition!r}", permanent=True)
        jobs = self.deps.jobs
        deadline = time.monotonic() + job.timeout_s
        announced = threading.Event()  # the RUNNING event went out (the claim did not publish it)
        context = JobContext(job.parameters, deadline, self.config, self._progress_writer(job, announced))
        outcome = Outcome()

        def target() -> None:
            try:
                outcome.result = implementation(context)
            except JobCancelled:
                outcome.cancelled = True
            except JobTimedOut:
                outcome.error = f"timed out after {job.timeout_s:g} s"
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                outcome.permanent = is_permanent(exc)

        thread = threading.Thread(target=target, name=f"job-{job.id[:8]}", daemon=True)
        thread.start()
        while True:
            # a job done within one heartbeat costs no heartbeat writes: its start time stands in
            thread.join(self.config.heartbeat_interval_s)
            if not thread.is_alive():
                break
            if not announced.is_set() and self._announce(job):
                announced.set()
            jobs.beat(job.id, job.attempt, job.worker_id, time.time())
            if jobs.cancel_requested(job.id):
                context.cancel.set()
            if time.monotonic() > deadline + self.config.timeout_grace_s:
                # the job ignores its checkpoints: abandon the thread (daemon) and fail the attempt
                context.cancel.set()
                return Outcome(error=f"timed out after {job.timeout_s:g} s")
        return outcome

    def _announce(self, job: SchedulerJob) -> bool:
        """The attempt outlasted a heartbeat without reporting progress: publish
        that it runs (a progress report of the progress it has). False when the
        database failed: the next heartbeat tries again, the job runs on."""
        try:
            self.deps.change(
                job.id, lambda current, at: current.report_progress(job.attempt, current.progress, at)
            )
        except PyMongoError as exc:
            log.warning("job %s: RUNNING not announced yet: %s", job.id, exc)
            return False
        return True

    def _progress_writer(self, job: SchedulerJob, announced: threading.Event) -> Any:
        last = [0.0]

        def write(percent: float) -> None:
            now = time.monotonic()
            if now - last[0] < self.config.progress_min_interval_s or percent >= 100.0:
                return  # coalesced: completion reports 100 itself
            last[0] = now
            self.deps.change(job.id, lambda current, at: current.report_progress(job.attempt, percent, at))
            announced.set()

        return write

    def _finish(self, job: SchedulerJob, outcome: Outcome) -> None:
        attempt = job.attempt

        def finish(current: SchedulerJob, now: float) -> bool:
            if outcome.cancelled:
                return current.cancelled(attempt, now)
            if outcome.error:
                delay = retry_delay_s(self.config, attempt - current.budget_base)
                return current.fail(attempt, outcome.error, now, delay, permanent=outcome.permanent)
            return current.succeed(attempt, outcome.result or {}, now)

        # the job as the claim wrote it: no read unless it changed since (progress, a cancel)
        _, applied = self.deps.change(job.id, finish, known=job)
        if not applied:
            log.info("job %s attempt %d finished after it was superseded", job.id, attempt)


class WorkerPool:
    """A Worker of `count` consumer threads on the work queue, each with prefetch 1."""

    name = "job-workers"

    def __init__(self, deps: Scheduling, config: SchedulerConfig, count: int) -> None:
        self.runner = JobRunner(deps, config)
        self.consumers = [
            WorkQueueConsumer(config, config.work_queue, self.runner.handle, prefetch=1) for _ in range(count)
        ]

    def healthy(self) -> bool:
        return all(consumer.healthy() for consumer in self.consumers)

    def start_threads(self) -> None:
        for consumer in self.consumers:
            consumer.start_thread()

    def stop_threads(self) -> None:
        self.runner.stopping.set()
        for consumer in self.consumers:
            consumer.stop_thread()

    async def start(self) -> None:
        self.start_threads()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_threads)


def retry_delay_s(config: SchedulerConfig, attempt: int) -> float:
    """The pause after the `attempt`-th failed attempt of a budget (1 first):
    `retry_delay_s`, times `retry_backoff_factor` per attempt, at most `retry_max_delay_s`."""
    exponent = max(0, attempt - 1)
    delay = config.retry_delay_s * config.retry_backoff_factor**exponent
    return min(delay, max(config.retry_max_delay_s, config.retry_delay_s))


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def main() -> None:
    """A standalone worker process: the pool plus its own outbox relay (so status
    events go out at once, not at the scheduler's next outbox sweep)."""
    config = SchedulerConfig()
    configure_logging(f"{config.service_name}-worker", config.log_level, config.log_file)
    catalogue = load_catalogue(config.job_catalogue_file)
    catalogue.require_kinds(set(KINDS))
    store = Store(config.mongo_url, config.database, config.mongo_timeout_ms)
    outbox = Outbox(store, config)
    relay = OutboxRelay(store, outbox, Publisher(config, name="worker-outbox"), config)
    # Only schedules (a retry's delay): the scheduler replicas run the timers, never a
    # worker, so no lease is taken here; the wake-up signal tells the runner at once.
    timers = DurableTimers(config, NAMESPACE, CALLBACK_REF, _runs_no_timers)
    pool = WorkerPool(Scheduling(store, outbox, catalogue, timers), config, max(1, config.worker_threads))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    timers.signal.start()
    relay.start_thread()
    pool.start_threads()
    log.info("worker started", extra={"threads": len(pool.consumers)})
    stopping.wait()
    pool.stop_threads()
    relay.stop_thread()
    timers.signal.stop()
    timers.client.close()
    store.close()


def _runs_no_timers(key: str, payload: dict[str, Any]) -> None:
    raise RuntimeError(f"timer {key} delivered to a worker process")


if __name__ == "__main__":
    main()
