"""Durable one-shot timers: APScheduler 3 with a MongoDBJobStore, run by exactly one
replica (the holder of a `mesh.lease`), scheduled and cancelled from any replica.

API (shared by session_svc and scheduler_svc)::

    class MyConfig(TimersConfig): ...           # timers_* settings below
    timers = DurableTimers(config, namespace="session",
                           callback_ref="session_svc.timers:fire", handler=on_timer)
    server.add_worker(timers)                   # async start()/stop(): lease, scheduler, wake-ups
    timers.schedule(key, run_at, payload)       # run_at: epoch seconds; payload: picklable dict
    timers.schedule_many([(key, run_at, payload), ...])  # one store write for many
    timers.cancel(key)                          # no error when absent
    timers.next_run_at(key) -> float | None
    timers.is_runner                            # this replica holds the lease

    # <svc>/timers.py -- the module-level function the stored jobs name:
    def fire(runner_id: str, key: str, token: str, payload: dict) -> None:
        mesh.timers.deliver(runner_id, key, token, payload)

`handler(key, payload)` runs on the runner's thread pool, at least once per
schedule (it must be idempotent: compare-and-set on a version); returning
normally completes the timer, raising retries it after `timers_redeliver_after_s`.

Optionally `batch_handler(firings) -> keys to retry` takes every firing that is
due together (up to `timers_batch_max`) in one call, so a service can apply them
in one transaction; the timers it does not name are completed with one delete.
With a batch handler, a submitted job only queues its firing (the job stays in
the store, as below, until completed) and one thread hands the queue over.

How it is safe:
- Jobs live in `<database>_timers.timers_<namespace>` (MongoDBJobStore); each job names
  `callback_ref` by text, so it unpickles in any process.
- Only the lease holder's scheduler processes jobs; every replica starts its
  scheduler paused (a never-started one would keep jobs in memory) and writes
  jobs straight into the MongoDBJobStore. Losing the lease pauses it at once.
- `misfire_grace_time=None` and `coalesce=True`: a timer due while no replica ran
  fires at once on recovery, however late, and only once.
- A firing is not removed from the store when submitted: its trigger re-fires it
  after `timers_redeliver_after_s` until the handler has completed it, so a runner
  killed between submission and effect loses nothing (at-least-once + idempotent
  handler = effect exactly once). Completion deletes the job only if it is still
  the job that fired (compare-and-set on the stored state), never a replacement.
  The scheduler's own per-job update after submission (the redelivery time) is
  equally conditional, and the updates of one round are written in one bulk write.
- Wake-up: `schedule()` publishes the run time on the fanout exchange
  `<events_exchange>.timers.<namespace>`; the runner consumes it on an exclusive,
  auto-delete queue and calls `scheduler.wakeup()` when the new run time is
  earlier than its own next wake (a lost signal only delays until the fallback
  wake every `timers_fallback_wakeup_s`). Acquiring the lease also wakes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.mongodb import MongoDBJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp
from bson.binary import Binary
from pika.adapters.blocking_connection import BlockingChannel
from pydantic import Field
from pymongo import MongoClient, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mesh.bus import connection_parameters
from mesh.config import MeshConfig
from mesh.lease import COLLECTION as LEASES
from mesh.lease import Lease, LeaseKeeper, default_owner
from mesh.store import Document

log = logging.getLogger(__name__)

TimerHandler = Callable[[str, dict[str, Any]], None]
STORE_RETRY_S = 1.0  # a scheduler round that failed on the store runs again after this


@dataclass(frozen=True)
class Firing:
    """One submitted run of a timer: `token` names this schedule of `key`."""

    key: str
    token: str
    payload: dict[str, Any]


# Takes the firings due together; returns the keys it could not complete (retried later).
BatchTimerHandler = Callable[[list[Firing]], Collection[str]]


class TimersConfig(MeshConfig):
    """Settings of `DurableTimers` (subclass it in a service's config)."""

    timers_lease_ttl_s: float = Field(5.0, gt=0, description="runner lease; renewed every ttl/3")
    timers_standby_poll_s: float = Field(0.5, gt=0, description="how often a standby tries the lease")
    timers_redeliver_after_s: float = Field(5.0, gt=0, description="re-fire an uncompleted timer after")
    timers_workers: int = Field(16, gt=0, description="threads running timer handlers")
    timers_batch_max: int = Field(200, gt=0, description="most firings handed to a batch handler at once")
    timers_fallback_wakeup_s: float = Field(5.0, gt=0, description="wake even without a signal")
    timers_database: str = Field("", description="default: '<service database>_timers'")

    @property
    def timers_db(self) -> str:
        """Timers live beside, not in, the service's database: handlers schedule them
        outside their own transaction (before it commits), and the embedded server
        makes a database's other writers wait for an open transaction."""
        return self.timers_database or f"{self.database}_timers"


class RedeliveryTrigger(BaseTrigger):
    """Fires at `run_at`, then again every `redeliver_after_s` until the job is
    removed (by completion). Never accumulates missed runs: the next fire time is
    always after `now`."""

    def __init__(self, run_at: datetime, redeliver_after_s: float) -> None:
        self.run_at = run_at
        self.redeliver_after_s = redeliver_after_s

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        if previous_fire_time is None:
            return self.run_at
        step = timedelta(seconds=self.redeliver_after_s)
        return max(previous_fire_time, now) + step

    def __str__(self) -> str:
        return f"redelivery[{self.run_at.isoformat()}, every {self.redeliver_after_s}s]"


class _TimerJobStore(MongoDBJobStore):
    """MongoDBJobStore that also stores each job's token (the third job argument)
    in a plain field, so completion can delete "this firing's job" with one
    conditional delete, and that tolerates a job completed (deleted) while the
    scheduler was still updating it after submission."""

    def add_job(self, job: Any) -> None:
        try:
            self.collection.insert_one({"_id": job.id, **self._fields(job)})
        except DuplicateKeyError as exc:
            raise ConflictingIdError(job.id) from exc

    _buffer: list[UpdateOne] | None = None

    def update_job(self, job: Any) -> None:
        # Only the schedule that was loaded: a replacement (new token) added meanwhile stays.
        fields = self._fields(job)
        loaded, update = {"_id": job.id, "token": fields["token"]}, {"$set": fields}
        if self._buffer is not None:
            self._buffer.append(UpdateOne(loaded, update))
        else:
            self.collection.update_one(loaded, update)

    def replace_job(self, job: Any) -> None:
        """A new schedule for an existing key (whatever its token)."""
        self.collection.update_one({"_id": job.id}, {"$set": self._fields(job)})

    def add_many(self, jobs: list[Any]) -> None:
        """Insert new jobs with one write; a key that exists already is replaced."""
        try:
            self.collection.insert_many([{"_id": job.id, **self._fields(job)} for job in jobs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", ())
            failed = {error["index"] for error in errors if error.get("code") == 11000}
            if len(failed) != len(errors):
                raise
            for index in sorted(failed):
                self.replace_job(jobs[index])

    @contextlib.contextmanager
    def buffered_updates(self) -> Iterator[None]:
        """Collect `update_job` calls and write them with one bulk write at the end."""
        self._buffer = []
        try:
            yield
        finally:
            self._flush()
            self._buffer = None

    def get_next_run_time(self) -> datetime | None:
        self._flush()  # the scheduler asks after submitting: it must see the new run times
        next_run_time: datetime | None = super().get_next_run_time()
        return next_run_time

    def _flush(self) -> None:
        buffer = self._buffer
        if buffer:
            self._buffer = []
            self.collection.bulk_write(buffer, ordered=False)

    def _fields(self, job: Any) -> dict[str, Any]:
        return {
            "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
            "job_state": Binary(pickle.dumps(job.__getstate__(), self.pickle_protocol)),
            "token": job.args[2] if len(job.args) > 2 else "",
        }

    def shutdown(self) -> None:
        pass  # the client belongs to DurableTimers


class _Scheduler(BackgroundScheduler):
    """BackgroundScheduler that remembers when it next wakes on its own, so a
    wake-up signal for a later time can be ignored, and that writes the per-job
    updates of one round of due jobs together."""

    next_wakeup_at: float = math.inf
    timer_store: _TimerJobStore | None = None

    def _process_jobs(self) -> float | None:
        wait_seconds: float | None
        try:
            if self.timer_store is None:
                wait_seconds = super()._process_jobs()
            else:
                with self.timer_store.buffered_updates():
                    wait_seconds = super()._process_jobs()
        except Exception as exc:  # the store is away: an escaping error would end the scheduler thread
            log.warning("timer round failed, retrying: %s", exc)
            wait_seconds = STORE_RETRY_S
        self.next_wakeup_at = math.inf if wait_seconds is None else time.time() + wait_seconds
        return wait_seconds


_runners: dict[str, DurableTimers] = {}
_runners_lock = threading.Lock()


def deliver(runner_id: str, key: str, token: str, payload: dict[str, Any]) -> None:
    """Run a fired timer in this process's runner `runner_id` ("<database>/<namespace>");
    called by the module-level job functions that services name in `callback_ref`."""
    with _runners_lock:
        runner = _runners.get(runner_id)
    if runner is None:  # lost the lease meanwhile: the job stays and re-fires at the new runner
        raise RuntimeError(f"no timer runner {runner_id!r} in this process")
    runner.run_fired(key, token, payload)


class _FiringQueue:
    """Firings waiting for the batch handler, each token once: a redelivery of a
    firing that is still queued or being handled adds nothing."""

    def __init__(self) -> None:
        self._pending: dict[str, Firing] = {}
        self._in_flight: set[str] = set()
        self._changed = threading.Condition()

    def put(self, firing: Firing) -> None:
        with self._changed:
            if firing.token in self._pending or firing.token in self._in_flight:
                return
            self._pending[firing.token] = firing
            self._changed.notify_all()

    def take(self, max_count: int, timeout_s: float) -> list[Firing]:
        """Up to `max_count` firings, oldest first (waits up to `timeout_s` for one)."""
        with self._changed:
            if not self._pending:
                self._changed.wait(timeout_s)
            tokens = list(self._pending)[:max_count]
            self._in_flight.update(tokens)
            return [self._pending.pop(token) for token in tokens]

    def done(self, firings: list[Firing]) -> None:
        with self._changed:
            self._in_flight.difference_update(f.token for f in firings)
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no firing is queued or being handled (at most `timeout_s`)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._in_flight, timeout_s)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class DurableTimers:
    """Durable timers of one namespace (see the module docstring)."""

    name = "timers"

    def __init__(
        self,
        config: TimersConfig,
        namespace: str,
        callback_ref: str,
        handler: TimerHandler,
        owner: str | None = None,
        batch_handler: BatchTimerHandler | None = None,
    ) -> None:
        self.config = config
        self.namespace = namespace
        self.runner_id = f"{config.timers_db}/{namespace}"
        self.callback_ref = callback_ref
        self.handler = handler
        self.batch_handler = batch_handler
        self._firings = _FiringQueue()
        self._batcher: threading.Thread | None = None
        self.client: MongoClient[Document] = MongoClient(
            config.mongo_url, serverSelectionTimeoutMS=config.mongo_timeout_ms, tz_aware=True
        )
        db = self.client[config.timers_db]
        self.jobs = db[f"timers_{namespace}"]
        self._store = _TimerJobStore(database=config.timers_db, collection=self.jobs.name, client=self.client)
        self._scheduler = _Scheduler(
            jobstores={"default": self._store},
            executors={"default": ThreadPoolExecutor(config.timers_workers)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.timer_store = self._store
        self.owner = owner or default_owner()
        lease = Lease(db[LEASES], f"timers.{namespace}", self.owner, config.timers_lease_ttl_s)
        self._keeper = LeaseKeeper(
            lease, self._became_runner, self._stopped_running, config.timers_standby_poll_s
        )
        self.signal = WakeSignal(config, f"{config.events_exchange}.timers.{namespace}", self._on_signal)
        self._fallback_stop = threading.Event()
        self._fallback: threading.Thread | None = None

    # -- scheduling (any replica) ------------------------------------------------

    def schedule(self, key: str, run_at: float, payload: dict[str, Any]) -> None:
        """Fire `handler(key, payload)` at `run_at` (epoch s); replaces a timer with the same key."""
        job = self._job(key, run_at, payload)
        # Straight into the job store rather than scheduler.add_job: that takes the
        # scheduler's job-store lock, which the runner holds while it submits a whole
        # batch of due jobs, and timer handlers themselves schedule the next timer.
        try:
            self._store.add_job(job)
        except ConflictingIdError:
            self._store.replace_job(job)
        self._wake(run_at)

    def schedule_many(self, timers: list[tuple[str, float, dict[str, Any]]]) -> None:
        """`schedule` for many (key, run_at, payload) with one store write."""
        if not timers:
            return
        self._store.add_many([self._job(key, run_at, payload) for key, run_at, payload in timers])
        self._wake(min(run_at for _, run_at, _ in timers))

    def _job(self, key: str, run_at: float, payload: dict[str, Any]) -> Job:
        when = datetime.fromtimestamp(run_at, UTC)
        trigger = RedeliveryTrigger(when, self.config.timers_redeliver_after_s)
        return Job(
            self._scheduler,
            id=key,
            func=self.callback_ref,
            trigger=trigger,
            args=(self.runner_id, key, uuid.uuid4().hex, payload),
            kwargs={},
            name=f"{self.namespace}:{key}",
            executor="default",
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
            next_run_time=when,
        )

    def cancel(self, key: str) -> None:
        """Remove a timer; no error when it already fired or never existed."""
        self.jobs.delete_one({"_id": key})

    def next_run_at(self, key: str) -> float | None:
        document = self.jobs.find_one({"_id": key}, {"next_run_time": 1})
        return None if document is None else float(document["next_run_time"])

    def wait_for_firings(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until this replica has no due firing queued or
        being handled: work that competes with timers for the store can yield to them."""
        return self._firings.wait_idle(timeout_s)

    @property
    def is_runner(self) -> bool:
        return self._keeper.held

    def ready(self) -> bool:
        """Health: the scheduler is started (so `schedule` writes to the store)."""
        return bool(self._scheduler.running)

    # -- lifecycle (Worker) ------------------------------------------------------

    async def start(self) -> None:
        import asyncio

        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        import asyncio

        await asyncio.to_thread(self.stop_sync)

    def start_sync(self) -> None:
        # Started paused: add/remove go to the store; only the lease holder resumes it.
        self._scheduler.start(paused=True)
        self.signal.start()
        self._keeper.start()
        self._fallback = threading.Thread(target=self._fallback_loop, name="timers-fallback", daemon=True)
        self._fallback.start()
        if self.batch_handler is not None:
            self._batcher = threading.Thread(target=self._batch_loop, name="timers-batches", daemon=True)
            self._batcher.start()

    def stop_sync(self) -> None:
        self._fallback_stop.set()
        self._firings.wake()
        if self._batcher is not None:
            self._batcher.join(timeout=10)
        self._keeper.stop(release=True)
        self.signal.stop()
        self._scheduler.shutdown(wait=True)
        self.client.close()

    # -- runner side ---------------------------------------------------------------

    def _became_runner(self) -> None:
        with _runners_lock:
            _runners[self.runner_id] = self
        self.signal.listen(True)
        self._scheduler.resume()  # resume() wakes the scheduler: overdue jobs fire now

    def _stopped_running(self) -> None:
        self._scheduler.pause()
        self.signal.listen(False)
        with _runners_lock:
            if _runners.get(self.runner_id) is self:
                del _runners[self.runner_id]

    def _wake(self, run_at: float) -> None:
        if self._keeper.held:
            self._on_signal(run_at)  # this process runs the timers: no broker round trip
        else:
            self.signal.publish(run_at)

    def _on_signal(self, run_at: float) -> None:
        if self._keeper.held and run_at < self._scheduler.next_wakeup_at:
            self._scheduler.next_wakeup_at = run_at
            self._scheduler.wakeup()

    def _fallback_loop(self) -> None:
        while not self._fallback_stop.wait(self.config.timers_fallback_wakeup_s):
            if self._keeper.held:
                self._scheduler.wakeup()

    def run_fired(self, key: str, token: str, payload: dict[str, Any]) -> None:
        """Run the handler, then complete the timer unless it was replaced meanwhile
        (with a batch handler: queue the firing for the next batch)."""
        if self.batch_handler is not None:
            self._firings.put(Firing(key, token, payload))
            return
        if not self._keeper.valid:
            # Lost (or could not renew) the lease after submission: leave the job for the runner.
            raise RuntimeError(f"timer {key} not run: lease {self.runner_id} not held")
        self.handler(key, payload)
        self._complete(key, token)

    def _complete(self, key: str, token: str) -> None:
        # Conditional on the token: a timer rescheduled meanwhile has a new one and stays.
        self.jobs.delete_one({"_id": key, "token": token})

    def _batch_loop(self) -> None:
        assert self.batch_handler is not None
        while not self._fallback_stop.is_set():
            firings = self._firings.take(self.config.timers_batch_max, 0.5)
            if not firings:
                continue
            try:
                self._run_batch(self.batch_handler, firings)
            except Exception:  # the jobs stay in the store and are redelivered
                log.exception("timer batch of %d failed", len(firings))
            finally:
                self._firings.done(firings)

    def _run_batch(self, batch_handler: BatchTimerHandler, firings: list[Firing]) -> None:
        if not self._keeper.valid:
            return  # lost the lease after submission: the jobs stay for the next runner
        retry = set(batch_handler(firings))
        completed = [f for f in firings if f.key not in retry]
        if completed:
            # Tokens are unique per schedule, so this is "each (key, token) pair" in one
            # delete: a key rescheduled meanwhile has another token and stays.
            self.jobs.delete_many(
                {"_id": {"$in": [f.key for f in completed]}, "token": {"$in": [f.token for f in completed]}}
            )


class WakeSignal:
    """A fanout exchange carrying "a timer at t was added" to the runner.

    One thread owns the pika connection (pika is not thread-safe); `publish` from
    any thread hands the message over with `add_callback_threadsafe`. Signals are
    transient and unconfirmed by design: a missed one only costs the runner's
    fallback wake."""

    def __init__(self, config: MeshConfig, exchange: str, on_signal: Callable[[float], None]) -> None:
        self.config = config
        self.exchange = exchange
        self._on_signal = on_signal
        self._listen = False
        self._consumer_tag: str | None = None
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"wake-{self.exchange}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def publish(self, run_at: float) -> None:
        body = json.dumps({"run_at": run_at}).encode()
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(Exception):
            connection.add_callback_threadsafe(lambda: self._publish_now(body))

    def listen(self, on: bool) -> None:
        """Consume signals (runner) or not (standby)."""
        self._listen = on
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.add_callback_threadsafe(self._sync_consumer)

    def _publish_now(self, body: bytes) -> None:
        if self._channel is not None and self._channel.is_open:
            self._channel.basic_publish(self.exchange, "", body)

    def _sync_consumer(self) -> None:
        channel = self._channel
        if channel is None or not channel.is_open:
            return
        if self._listen and self._consumer_tag is None:
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, self.exchange)
            self._consumer_tag = channel.basic_consume(queue, self._on_message, auto_ack=True)
        elif not self._listen and self._consumer_tag is not None:
            channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def _on_message(self, _channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
        try:
            run_at = float(json.loads(body)["run_at"])
        except (ValueError, KeyError, TypeError):
            return
        self._on_signal(run_at)

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._connect()
                delay = 0.1
                assert self._connection is not None
                while not self._stop.is_set():
                    self._connection.process_data_events(time_limit=0.2)
            except Exception as exc:  # broker away: signals are best-effort, retry with backoff
                log.warning("wake-up signal connection failed: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.bus_reconnect_max_s)
            finally:
                self._disconnect()

    def _connect(self) -> None:
        # The bus's parameters: heartbeats (a dead broker is noticed), any cluster node.
        parameters = connection_parameters(self.config, f"{self.exchange} wake-up")
        self._connection = pika.BlockingConnection(parameters)
        self._channel = self._connection.channel()
        self._channel.exchange_declare(self.exchange, "fanout", durable=False, auto_delete=False)
        self._consumer_tag = None
        self._sync_consumer()
        if self._listen:
            # A signal may have been missed while disconnected.
            self._on_signal(-math.inf)

    def _disconnect(self) -> None:
        connection, self._connection, self._channel, self._consumer_tag = self._connection, None, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()
