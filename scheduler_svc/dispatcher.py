"""The dispatcher: puts QUEUED jobs' work items on the durable work queue.

Jobs arrive in memory, handed over once the transaction that queued them has
committed (`enqueue`), and go out in batches: publish them all, wait for the
broker's confirms together, then clear their `dispatch_at` with one bulk write.
A job whose time lies ahead (a run_at, a retry's delay) comes through its durable
timer (scheduler_svc.timers), not through here.

Recovery: a process that died, or a broker that was away, between the commit and
the confirm leaves `dispatch_at` set. Every replica sweeps for such jobs, overdue
by `dispatch_grace_s`, every `dispatch_interval_s` and after reconnecting to the
broker; a work item sent twice is harmless (workers drop duplicates)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future, wait

from pymongo.errors import PyMongoError

from mesh.batching import take_batch
from mesh.bus import Publisher, work_queue_topology
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.handlers import Scheduling, dispatch_event
from scheduler_svc.model import JobStatus, SchedulerJob

log = logging.getLogger(__name__)


class Dispatcher:
    """A Worker publishing work items from its own thread (see the module docstring)."""

    name = "job-dispatcher"

    def __init__(self, deps: Scheduling, config: SchedulerConfig) -> None:
        self.deps = deps
        self.config = config
        self.topology = work_queue_topology(config, config.work_queue)
        self.publisher = Publisher(config, name="job-dispatch", declare=False, consumers=[self.topology])
        self._ready: queue.SimpleQueue[SchedulerJob | None] = queue.SimpleQueue()
        self._sweep_now = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, job: SchedulerJob) -> None:
        """Send this QUEUED job's work item soon (call after its transaction committed)."""
        self._ready.put(job)

    def healthy(self) -> bool:
        return self.publisher.healthy()

    async def start(self) -> None:
        self.publisher.on_ready(self._sweep_now.set)
        self.publisher.start()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._ready.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
        await asyncio.to_thread(self.publisher.close)

    def _run(self) -> None:
        next_sweep = time.monotonic() + self.config.dispatch_interval_s
        while not self._stopping.is_set():
            try:
                batch = self._take(max(0.0, next_sweep - time.monotonic()))
                if batch and self.publisher.healthy():
                    self.publish(batch)  # when the broker is away, the sweep after reconnecting has them
                if self._sweep_now.is_set() or time.monotonic() >= next_sweep:
                    self._sweep_now.clear()
                    next_sweep = time.monotonic() + self.config.dispatch_interval_s
                    if self.publisher.healthy():
                        self.sweep()
            except PyMongoError as exc:
                log.warning("dispatcher: database error: %s", exc)
                self._stopping.wait(self.config.dispatch_interval_s)
            except Exception:
                log.exception("dispatcher iteration failed")
                self._stopping.wait(self.config.dispatch_interval_s)

    def _take(self, timeout_s: float) -> list[SchedulerJob]:
        """What was handed over (waits up to `timeout_s` for the first)."""
        return take_batch(self._ready, self.config.dispatch_batch, timeout_s)

    def sweep(self) -> int:
        """Send the work items overdue by the grace period; returns how many went out."""
        cutoff = time.time() - self.config.dispatch_grace_s
        overdue = self.deps.jobs.overdue(cutoff, self.config.dispatch_batch)
        if overdue:
            log.info("dispatcher: %d work items overdue, sending them again", len(overdue))
        return self.publish(overdue)

    def publish(self, jobs: list[SchedulerJob]) -> int:
        """Publish the jobs' work items, wait for the confirms, and mark the confirmed
        ones dispatched in one write; returns how many the broker confirmed."""
        sent: list[tuple[SchedulerJob, Future[None]]] = [
            (job, self.publisher.publish(dispatch_event(job), exchange="", routing_key=self.topology.queue))
            for job in jobs
            if job.status == JobStatus.QUEUED
        ]
        wait([future for _, future in sent], timeout=self.config.bus_publish_timeout_s)
        confirmed = [job for job, future in sent if future.done() and future.exception() is None]
        if len(confirmed) < len(sent):
            log.warning("dispatch of %d jobs deferred to the recovery sweep", len(sent) - len(confirmed))
        self.deps.jobs.mark_dispatched([(job.id, job.sequence) for job in confirmed])
        return len(confirmed)
