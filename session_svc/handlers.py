"""Service-layer functions of session_svc: each takes a command and the service's
dependencies, runs one per-session turn and returns the resulting `Session`.

A turn is optimistic: read the session, decide with the pure model, then
compare-and-set on `version` together with the outbox row in one transaction;
on a conflict, re-read and decide again. The next timer is scheduled after the
compare-and-set but before the commit under a fresh key that the session
document names (`timer_key`): if the commit fails, the orphan job fires, sees a
different `timer_key`, and does nothing; if the process dies after the commit,
the job already exists. The previous timer is cancelled after the commit (and
would be a no-op anyway)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError, PyMongoError

from mesh.auth import Principal
from mesh.errors import Aborted, FailedPrecondition, NotFound, PermissionDenied
from mesh.outbox import Outbox
from mesh.protos import now_s
from mesh.store import Document, Store, UnitOfWork, backoff, is_transient
from mesh.timers import DurableTimers, Firing
from session_svc import model
from session_svc.config import SessionConfig
from session_svc.events import event_for
from session_svc.model import Policy, Session
from session_svc.notify import ChangeNotifier
from session_svc.repository import COLLECTION, SessionRepository

log = logging.getLogger(__name__)

T = TypeVar("T")
Decision = Callable[[Session, float], Session | None]


@dataclass
class Deps:
    """What the handlers work with (wired in __main__)."""

    config: SessionConfig
    store: Store
    outbox: Outbox
    timers: DurableTimers
    notifier: ChangeNotifier

    def transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        """One attempt of `work` in a committed transaction (callers retry)."""
        with self.store.unit_of_work() as uow:
            result = work(uow)
            uow.commit()
            return result

    @property
    def repository(self) -> SessionRepository:
        return SessionRepository(self.store.db[COLLECTION])

    @property
    def policy(self) -> Policy:
        return Policy(self.config.session_warning_before_s, self.config.session_recharge_grace_s)


@dataclass(frozen=True)
class StartSession:
    customer_id: str
    advisor_id: str
    prepaid_seconds: int
    room_id: str
    request_id: str


@dataclass(frozen=True)
class Recharge:
    session_id: str
    seconds: int
    request_id: str


@dataclass(frozen=True)
class EndSession:
    session_id: str


def start_session(command: StartSession, deps: Deps) -> Session:
    for attempt in range(1, deps.config.session_max_turn_attempts + 1):
        try:
            return deps.transaction(lambda uow: _insert_started(uow, command, deps))
        except DuplicateKeyError:
            # A retry of the request (or of our own commit whose reply was lost): the
            # unique index says so without a read before every start.
            existing = deps.repository.by_start_request(command.customer_id, command.request_id)
            if existing is not None:
                return existing
            continue
        except PyMongoError as exc:
            if not is_transient(exc):
                raise
        backoff(attempt)
    raise Aborted("could not start the session; retry")


def new_session(command: StartSession, now: float, deps: Deps) -> Session:
    """A started session (not yet stored) that names its first timer."""
    session = model.start(
        str(uuid.uuid4()),
        command.customer_id,
        command.advisor_id,
        # No room given: the session's own, named now so Session.room_id always shows
        # where it posts (chat_svc creates it with this id on SessionStarted).
        command.room_id or str(uuid.uuid4()),
        command.prepaid_seconds,
        command.request_id,
        now,
        deps.policy,
    )
    return with_timer_key(session)


def notify_after_commit(uow: UnitOfWork, deps: Deps, sessions: list[Session]) -> None:
    """Wake the watchers of `sessions` once `uow` has committed."""

    def notify() -> None:
        for session in sessions:
            deps.notifier.notify(session.id)

    uow.after_commit(notify)


def _insert_started(uow: UnitOfWork, command: StartSession, deps: Deps) -> Session:
    now = now_s()
    timed = new_session(command, now, deps)
    SessionRepository(uow.db[COLLECTION]).add(timed, uow.session)
    _schedule(deps, timed)
    deps.outbox.add(uow, event_for(timed, now))
    uow.after_commit(lambda: deps.notifier.notify(timed.id))
    return timed


def get_session(session_id: str, principal: Principal, deps: Deps) -> Session:
    session = deps.repository.get(session_id)
    return _visible(session, principal)


def recharge(command: Recharge, principal: Principal, deps: Deps) -> Session:
    session = _visible(deps.repository.get(command.session_id), principal)
    if not principal.is_privileged and principal.user_id != session.customer_id:
        raise PermissionDenied("only the session's customer may recharge it")

    def decide(current: Session, now: float) -> Session | None:
        if command.request_id in current.recharge_request_ids:
            return None  # a retry: the time was added once already
        return model.recharge(current, command.seconds, command.request_id, now, deps.policy)

    return _turn(deps, command.session_id, decide)


def end_session(command: EndSession, principal: Principal, deps: Deps) -> Session:
    _visible(deps.repository.get(command.session_id), principal)
    return _turn(deps, command.session_id, lambda current, now: model.end(current, principal.user_id, now))


def on_timer(key: str, payload: dict[str, Any], deps: Deps) -> None:
    """A session timer fired (on the lease holder, at least once per schedule)."""
    session_id, version, run_at = _timer_payload(payload)

    def decide(current: Session, now: float) -> Session | None:
        if current.timer_key != key or current.version != version:
            return None  # stale: the session changed and named another timer
        # Unchanged since scheduling, so what was due at run_at is due now; max()
        # absorbs the scheduler's sub-millisecond early wake-ups.
        return model.fire(current, max(now, run_at), deps.policy)

    _turn(deps, session_id, decide)


def on_timers(firings: list[Firing], deps: Deps) -> list[str]:
    """Timers that came due together: one transaction for all of them (each still a
    compare-and-set on its session's version); if any lost a race, one turn each.
    Returns the keys to retry."""
    try:
        changes = _plan_firings(deps, firings)
        if changes:
            batch_transaction(deps, lambda uow: _fire_batch(uow, deps, changes))
        return []
    except (_Conflict, PyMongoError) as exc:
        # Safe whatever the commit's fate: the turns below re-read and are idempotent.
        log.info(
            "timer batch falls back to single turns", extra={"size": len(firings), "error": str(exc)[:200]}
        )
    failed = []
    for firing in firings:
        try:
            on_timer(firing.key, firing.payload, deps)
        except Exception:
            log.exception("timer %s failed; it is retried", firing.key)
            failed.append(firing.key)
    return failed


def batch_transaction(deps: Deps, work: Callable[[UnitOfWork], T]) -> T:
    """One transaction for a whole batch, tried again while the store reports a
    transient conflict (a busy database), so a batch is not split into single
    transactions just when the store is busiest. Other errors propagate."""
    return deps.store.transaction(work, attempts=deps.config.session_batch_attempts)


def _plan_firings(deps: Deps, firings: list[Firing]) -> list[tuple[Session, int]]:
    """What the firings change, decided from a plain read: (new session, the version it
    replaces). Their next timers are scheduled here, before the transaction: timers live
    in another database, and a transaction holds the sessions database from its first
    command, so nothing waits on the sessions database while they are written. If the
    transaction then loses its compare-and-set, those timers name no session and fire
    on nothing (as for a start that never commits)."""
    ids = sorted({str(f.payload["session_id"]) for f in firings})
    current = SessionRepository(deps.store.db[COLLECTION]).get_many(ids)
    now = now_s()
    changes: dict[str, tuple[Session, int]] = {}
    for firing in firings:
        session_id, version, run_at = _timer_payload(firing.payload)
        session = current.get(session_id)
        if session is None or session_id in changes:
            continue
        if session.timer_key != firing.key or session.version != version:
            continue  # stale: the session changed and named another timer
        decided = model.fire(session, max(now, run_at), deps.policy)
        if decided is not None:
            changes[session_id] = (with_timer_key(decided), session.version)
    news = [new for new, _ in changes.values()]
    deps.timers.schedule_many([timer for timer in map(timer_of, news) if timer is not None])
    return list(changes.values())


def _fire_batch(uow: UnitOfWork, deps: Deps, changes: list[tuple[Session, int]]) -> None:
    """Apply planned firings: every session still at the version read, or none."""
    if not SessionRepository(uow.db[COLLECTION]).replace_many_if_version(changes, uow.session):
        raise _Conflict()
    news = [new for new, _ in changes]
    now = now_s()
    deps.outbox.add_many(uow, [event_for(new, now) for new in news])
    # The fired keys are completed by the timers themselves: nothing to cancel.
    notify_after_commit(uow, deps, news)


def _timer_payload(payload: dict[str, Any]) -> tuple[str, int, float]:
    return str(payload["session_id"]), int(payload["version"]), float(payload["run_at"])


def _visible(session: Session | None, principal: Principal) -> Session:
    if session is None or not (principal.is_privileged or session.may_see(principal.user_id)):
        raise NotFound("session not found")
    return session


class _Conflict(Exception):
    """The compare-and-set lost against a concurrent turn."""


def _turn(deps: Deps, session_id: str, decide: Decision) -> Session:
    """One serialised turn on a session (see the module docstring)."""
    for attempt in range(1, deps.config.session_max_turn_attempts + 1):
        try:
            return deps.transaction(lambda uow: _attempt(uow, deps, session_id, decide))
        except _Conflict:
            pass
        except PyMongoError as exc:
            # Safe to re-run whatever the commit's fate: a turn re-reads and is
            # idempotent (version compare-and-set, recharge request ids).
            if not is_transient(exc):
                raise
            log.info("session turn retried", extra={"attempt": attempt, "error": str(exc)[:200]})
        backoff(attempt)
    raise Aborted("session is too busy; retry")


def _attempt(uow: UnitOfWork, deps: Deps, session_id: str, decide: Decision) -> Session:
    repository = SessionRepository(uow.db[COLLECTION])
    current = repository.get(session_id, session=uow.session)
    if current is None:
        raise NotFound("session not found")
    now = now_s()
    decided = decide(current, now)
    if decided is None:
        return current
    new = with_timer_key(decided)
    if not repository.replace_if_version(new, current.version, uow.session):
        raise _Conflict()
    _schedule(deps, new)
    deps.outbox.add(uow, event_for(new, now))
    previous = current.timer_key

    def after() -> None:
        if previous and previous != new.timer_key:
            deps.timers.cancel(previous)
        deps.notifier.notify(new.id)

    uow.after_commit(after)
    return new


def with_timer_key(session: Session) -> Session:
    import dataclasses

    due = model.next_timer(session)
    key = None if due is None else f"{session.id}.{session.version}.{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(session, timer_key=key)


def timer_of(session: Session) -> tuple[str, float, Document] | None:
    """The (key, run_at, payload) of the session's next timer, if it has one."""
    due = model.next_timer(session)
    if due is None or session.timer_key is None:
        return None
    _, run_at = due
    return session.timer_key, run_at, {"session_id": session.id, "version": session.version, "run_at": run_at}


def _schedule(deps: Deps, session: Session) -> None:
    timer = timer_of(session)
    if timer is not None:
        deps.timers.schedule(*timer)


__all__ = [
    "Deps",
    "EndSession",
    "FailedPrecondition",
    "Recharge",
    "StartSession",
    "batch_transaction",
    "end_session",
    "get_session",
    "on_timer",
    "on_timers",
    "recharge",
    "start_session",
]


@dataclass(frozen=True)
class ListSessions:
    page_size: int
    after: tuple[float, str] | None
    state: model.State | None


def list_filters(principal: Principal, state: model.State | None) -> Document:
    """Participants see their own sessions, privileged callers all of them."""
    filters: Document = {}
    if not principal.is_privileged:
        filters["$or"] = [{"customer_id": principal.user_id}, {"advisor_id": principal.user_id}]
    if state is not None:
        filters["state"] = state.value
    return filters


def list_sessions(query: ListSessions, principal: Principal, deps: Deps) -> tuple[list[Session], bool]:
    """One page, newest first, and whether more follow."""
    rows = deps.repository.page(list_filters(principal, query.state), query.after, query.page_size + 1)
    return rows[: query.page_size], len(rows) > query.page_size
