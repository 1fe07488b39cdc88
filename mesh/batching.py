"""Group commit: commands that arrive while a transaction is being written share the
next one, so a write path is not capped at one transaction per request.

`GroupCommit(name, write_batch, write_one)` is a Worker with one writer thread.
`submit(command)` returns a future of that command's result. The thread takes what
has queued (up to `max_batch`) and calls `write_batch(commands)` once: one
transaction, one result per command, in order. A batch of one, or a batch that fails
as a whole (a retried idempotency key colliding on a unique index, a transient
error, any other exception), is written again one command at a time through
`write_one`, which tells a retry from a new request; each caller then gets its own
result or error.

`before_batch` runs after the first command arrived and before the batch is taken:
a hook to let more important work go first (session_svc lets due timers fire), and
during which more commands join the batch.

`DeferredWrites` is the consumer side's counterpart: what the effects of one inbox
batch write, item by item, goes to the database in one write before the commit."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from pymongo.errors import PyMongoError

from mesh.store import UnitOfWork

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")
T = TypeVar("T")


def take_batch(ready: queue.SimpleQueue[T | None], max_count: int, timeout_s: float) -> list[T]:
    """What has been handed over on `ready`, up to `max_count` items, waiting up to
    `timeout_s` for the first; a None on the queue only wakes the taker."""
    try:
        taken = [ready.get(timeout=max(timeout_s, 0.0))]
    except queue.Empty:
        return []
    while len(taken) < max_count:
        try:
            taken.append(ready.get_nowait())
        except queue.Empty:
            break
    return [item for item in taken if item is not None]


class GroupCommit(Generic[C, R]):
    """A Worker: `submit(command)` returns a future of its result."""

    def __init__(
        self,
        name: str,
        write_batch: Callable[[list[C]], Sequence[R]],
        write_one: Callable[[C], R],
        max_batch: int,
        before_batch: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.write_batch = write_batch
        self.write_one = write_one
        self.max_batch = max_batch
        self.before_batch = before_batch
        self._queue: queue.SimpleQueue[tuple[C, Future[R]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, command: C) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((command, future))
        return future

    async def call(self, command: C) -> R:
        """`submit` for a coroutine: await the command's own result."""
        return await asyncio.wrap_future(self.submit(command))

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
            # A caller that gave up (its RPC cancelled or past its deadline) before its
            # write started is left out: it was never written, as if never received.
            # Once running, a future can no longer be cancelled.
            live = [(command, future) for command, future in batch if future.set_running_or_notify_cancel()]
            try:
                self.commit(live)
            except Exception:  # the writer must outlive anything: the next callers wait on it
                log.exception("group commit failed", extra={"batcher": self.name, "size": len(live)})

    def _take(self) -> list[tuple[C, Future[R]]] | None:
        first = self._queue.get()
        if first is None:
            return None
        if self.before_batch is not None:
            try:
                self.before_batch()
            except Exception:  # a hook must not stop the writer: the batch goes ahead
                log.exception("before_batch hook failed", extra={"batcher": self.name})
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

    def commit(self, batch: list[tuple[C, Future[R]]]) -> None:
        """One `write_batch` for the whole batch; one `write_one` each if that fails."""
        if len(batch) > 1:
            try:
                results = self.write_batch([command for command, _ in batch])
            except Exception as exc:  # DuplicateKeyError included: a retried request
                # anything else too: one by one, each caller gets its own error, and the
                # writer thread lives on (an exception escaping here would strand every future)
                level = logging.INFO if isinstance(exc, PyMongoError) else logging.WARNING
                log.log(
                    level,
                    "batch falls back to single writes",
                    extra={"batcher": self.name, "size": len(batch), "error": str(exc)[:200]},
                )
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
                return
        for command, future in batch:
            try:
                future.set_result(self.write_one(command))
            except Exception as exc:
                future.set_exception(exc)


class DeferredWrites(Generic[T]):
    """Items that effects add one at a time within a unit of work (an inbox batch
    applies its events one by one), written together just before it commits: one
    insert_many or bulk write per transaction instead of one write per item.
    `writes.add(uow, item)`; `write(uow, items)` gets them in the order added. If it
    raises, nothing commits (UnitOfWork.before_commit)."""

    def __init__(self, write: Callable[[UnitOfWork, list[T]], object]) -> None:
        self.write = write
        self._pending: WeakKeyDictionary[UnitOfWork, list[T]] = WeakKeyDictionary()

    def add(self, uow: UnitOfWork, item: T) -> None:
        items = self._pending.get(uow)
        if items is None:
            items = self._pending[uow] = []
            uow.before_commit(lambda: self._flush(uow, items))
        items.append(item)

    def _flush(self, uow: UnitOfWork, items: list[T]) -> None:
        self._pending.pop(uow, None)
        self.write(uow, items)
