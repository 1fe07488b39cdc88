"""Group commit of StartSession: the starts that arrive while a transaction is being
written share the next one (one insert of sessions, one of outbox rows, one of timer
jobs, one commit), so the start rate is not capped at one transaction per start.

A batch that fails as a whole (a retried request id colliding on the unique index,
a transient error) is started again one by one through `handlers.start_session`,
which tells a retry from a new request; each caller gets its own result or error."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

from pymongo.errors import PyMongoError

from mesh.store import UnitOfWork
from session_svc.events import event_for
from session_svc.handlers import (
    Deps,
    StartSession,
    batch_transaction,
    new_session,
    notify_after_commit,
    start_session,
    timer_of,
)
from session_svc.model import Session
from session_svc.repository import COLLECTION, SessionRepository

log = logging.getLogger(__name__)

_Pending = tuple[StartSession, "Future[Session]"]


class StartBatcher:
    """A Worker: `submit(command)` returns a future of the started session."""

    name = "session-starts"

    def __init__(self, deps: Deps, max_batch: int) -> None:
        self.deps = deps
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, command: StartSession) -> Future[Session]:
        future: Future[Session] = Future()
        self._queue.put((command, future))
        return future

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self.start_batch(batch)

    def _take(self) -> list[_Pending] | None:
        first = self._queue.get()
        if first is None:
            return None
        # Due timers first: a start transaction holds the sessions database, so a
        # firing queued behind it is late, while starts that wait join one batch.
        self.deps.timers.wait_for_firings(self.deps.config.session_start_yield_s)
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def start_batch(self, batch: list[_Pending]) -> None:
        """One transaction for the whole batch; one start each if that fails."""
        if len(batch) > 1:
            try:
                started = batch_transaction(
                    self.deps, lambda uow: _insert_started(uow, [c for c, _ in batch], self.deps)
                )
            except PyMongoError as exc:  # DuplicateKeyError included: a retried request
                log.info(
                    "start batch falls back to single starts",
                    extra={"size": len(batch), "error": str(exc)[:200]},
                )
            else:
                for (_, future), session in zip(batch, started, strict=True):
                    future.set_result(session)
                return
        for command, future in batch:
            try:
                future.set_result(start_session(command, self.deps))
            except Exception as exc:
                future.set_exception(exc)


def _insert_started(uow: UnitOfWork, commands: list[StartSession], deps: Deps) -> list[Session]:
    now = time.time()
    sessions = [new_session(command, now, deps) for command in commands]
    # Timers first: they live in another database, and the transaction holds the
    # sessions database from its first command, so nothing else waits meanwhile. A
    # timer whose session never commits fires on nothing (the handler finds none).
    deps.timers.schedule_many([timer for timer in map(timer_of, sessions) if timer is not None])
    SessionRepository(uow.db[COLLECTION]).add_many(sessions, uow.session)
    deps.outbox.add_many(uow, [event_for(session, now) for session in sessions])
    notify_after_commit(uow, deps, sessions)
    return sessions
