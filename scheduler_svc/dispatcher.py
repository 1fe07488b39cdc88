"""The dispatcher: puts due jobs on the durable work queue. A job is due when its
`dispatch_at` (run_at, or now, or the retry time) has passed; the field is
cleared only after the broker confirmed the work item, so a crash in between
re-sends it (workers drop duplicates). Because the due time lives in the
scheduler's own collection, a run_at that came due while the service was down
fires on the first sweep after start-up.

Every replica may sweep: each state change is a transaction on the job, and
workers treat a second copy of a work item as a duplicate."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from pymongo.errors import PyMongoError

from mesh.bus import BrokerUnavailable, Publisher, work_queue_topology
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.handlers import Scheduling, dispatch_event
from scheduler_svc.model import JobStatus, SchedulerJob

log = logging.getLogger(__name__)


class Dispatcher:
    """A Worker sweeping due jobs from its own thread; `wake()` makes it sweep now."""

    name = "job-dispatcher"

    def __init__(self, deps: Scheduling, config: SchedulerConfig) -> None:
        self.deps = deps
        self.config = config
        self.topology = work_queue_topology(config, config.work_queue)
        self.publisher = Publisher(config, name="job-dispatch", declare=False, consumers=[self.topology])
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def healthy(self) -> bool:
        return self.publisher.healthy()

    async def start(self) -> None:
        self.publisher.on_ready(self.wake)
        self.publisher.start()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
        await asyncio.to_thread(self.publisher.close)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self.publisher.healthy():
                    self.sweep()
                wait_s = self._until_next_due()
            except PyMongoError as exc:
                log.warning("dispatcher: database error: %s", exc)
                wait_s = self.config.dispatch_interval_s
            except Exception:
                log.exception("dispatcher sweep failed")
                wait_s = self.config.dispatch_interval_s
            self._wake.wait(wait_s)

    def _until_next_due(self) -> float:
        next_due = self.deps.jobs.next_due()
        if next_due is None:
            return self.config.dispatch_interval_s
        return max(0.0, min(next_due - time.time(), self.config.dispatch_interval_s))

    def sweep(self) -> int:
        """Queue and publish every due job; returns how many went out."""
        sent = 0
        for job_id in self.deps.jobs.due(time.time(), self.config.dispatch_batch):
            if self._stopping.is_set():
                break
            job, _ = self.deps.change(job_id, lambda job, now: job.queue(now))
            if self._publish(job):
                sent += 1
        return sent

    def _publish(self, job: SchedulerJob) -> bool:
        if job.dispatch_at is None:
            return False
        if job.status != JobStatus.QUEUED:  # cancelled or finished meanwhile: nothing to send
            self.deps.jobs.mark_dispatched(job.id, job.dispatch_at, job.sequence)
            return False
        future = self.publisher.publish(dispatch_event(job), exchange="", routing_key=self.topology.queue)
        try:
            future.result(timeout=self.config.bus_publish_timeout_s)
        except (BrokerUnavailable, TimeoutError) as exc:
            log.warning("dispatch of job %s deferred: %s", job.id, exc)
            return False
        self.deps.jobs.mark_dispatched(job.id, job.dispatch_at, job.sequence)
        return True
