"""Group commit of StartSession: the starts that arrive while a transaction is being
written share the next one (one insert of sessions, one of outbox rows, one of timer
jobs, one commit), so the start rate is not capped at one transaction per start.

A batch that fails as a whole (a retried request id colliding on the unique index,
a transient error) is started again one by one through `handlers.start_session`,
which tells a retry from a new request (mesh.batching.GroupCommit)."""

from __future__ import annotations

from functools import partial

from mesh.batching import GroupCommit
from mesh.protos import now_s
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


def start_batcher(deps: Deps, max_batch: int) -> GroupCommit[StartSession, Session]:
    """A Worker: `submit(command)` returns a future of the started session."""
    return GroupCommit(
        "session-starts",
        write_batch=lambda commands: batch_transaction(
            deps, partial(_insert_started, commands=commands, deps=deps)
        ),
        write_one=lambda command: start_session(command, deps),
        max_batch=max_batch,
        # Due timers first: a start transaction holds the sessions database, so a
        # firing queued behind it is late, while starts that wait join one batch.
        before_batch=lambda: deps.timers.wait_for_firings(deps.config.session_start_yield_s),
    )


def _insert_started(uow: UnitOfWork, *, commands: list[StartSession], deps: Deps) -> list[Session]:
    now = now_s()
    sessions = [new_session(command, now, deps) for command in commands]
    # Timers first: they live in another database, and the transaction holds the
    # sessions database from its first command, so nothing else waits meanwhile. A
    # timer whose session never commits fires on nothing (the handler finds none).
    deps.timers.schedule_many([timer for timer in map(timer_of, sessions) if timer is not None])
    SessionRepository(uow.db[COLLECTION]).add_many(sessions, uow.session)
    deps.outbox.add_many(uow, [event_for(session, now) for session in sessions])
    notify_after_commit(uow, deps, sessions)
    return sessions
