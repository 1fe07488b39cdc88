"""The paid-session domain: states, transitions and the next timer. Pure, no I/O.

Times are epoch seconds (floats, whole milliseconds: mesh.protos.now_s). While
ACTIVE, `paid_until` is the pause deadline; while PAUSED_FOR_RECHARGE it is the
moment the session paused.

The warning is due `warning_before_s` before the pause, but never before the moment
the paid time was bought: a session (or a resume) with less paid time than the lead
is warned at once, when it starts (`warn_at` = the start), and only once. With a
lead of 0 there is no warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

from mesh.errors import FailedPrecondition


class State(StrEnum):
    """Session states (the proto's SessionState without the prefix)."""

    ACTIVE = "ACTIVE"
    PAUSED_FOR_RECHARGE = "PAUSED_FOR_RECHARGE"
    ENDED = "ENDED"
    EXPIRED = "EXPIRED"


TERMINAL = frozenset({State.ENDED, State.EXPIRED})


class Change(StrEnum):
    """What the last change of a session was (drives events and WatchSession)."""

    STARTED = "STARTED"
    WARNED = "WARNED"
    PAUSED = "PAUSED"
    RESUMED = "RESUMED"
    RECHARGED = "RECHARGED"
    ENDED = "ENDED"
    EXPIRED = "EXPIRED"


class TimerKind(StrEnum):
    """Which transition a session's timer performs."""

    WARN = "WARN"
    PAUSE = "PAUSE"
    EXPIRE = "EXPIRE"


@dataclass(frozen=True)
class Policy:
    """Configured lead and grace times."""

    warning_before_s: float
    recharge_grace_s: float


@dataclass(frozen=True)
class Session:
    """A paid session between a customer and an advisor."""

    id: str
    customer_id: str
    advisor_id: str
    room_id: str
    state: State
    paid_until: float
    warn_at: float | None
    warned: bool
    expire_at: float | None
    paid_seconds_total: int
    version: int
    create_time: float
    update_time: float
    start_request_id: str
    end_time: float | None = None
    ended_by: str = ""
    last_change: Change = Change.STARTED
    last_added_seconds: int = 0
    timer_key: str | None = None
    pause_count: int = 0
    recharge_request_ids: tuple[str, ...] = field(default_factory=tuple)

    def remaining_seconds(self, now: float) -> int:
        if self.state is not State.ACTIVE:
            return 0
        return max(0, int(self.paid_until - now + 0.999))

    def may_see(self, user_id: str) -> bool:
        return user_id in (self.customer_id, self.advisor_id)


def start(
    session_id: str,
    customer_id: str,
    advisor_id: str,
    room_id: str,
    prepaid_seconds: int,
    request_id: str,
    now: float,
    policy: Policy,
) -> Session:
    paid_until = now + prepaid_seconds
    return Session(
        id=session_id,
        customer_id=customer_id,
        advisor_id=advisor_id,
        room_id=room_id,
        state=State.ACTIVE,
        paid_until=paid_until,
        warn_at=warning_moment(paid_until, now, policy),
        warned=False,
        expire_at=None,
        paid_seconds_total=prepaid_seconds,
        version=1,
        create_time=now,
        update_time=now,
        start_request_id=request_id,
        last_change=Change.STARTED,
        last_added_seconds=prepaid_seconds,
    )


def warning_moment(paid_until: float, now: float, policy: Policy) -> float:
    """When the pause warning is due: the lead before `paid_until`, but not before `now`
    (the start or the recharge), so a short session is warned at its start."""
    return max(now, paid_until - policy.warning_before_s)


def recharge(session: Session, seconds: int, request_id: str, now: float, policy: Policy) -> Session:
    """Add paid time: extends an ACTIVE session, resumes a paused one."""
    if session.state in TERMINAL:
        raise FailedPrecondition(f"session is {session.state.value}; it cannot be recharged")
    if session.state is State.PAUSED_FOR_RECHARGE:
        paid_until, change = now + seconds, Change.RESUMED  # the clock restarts at the resume
    else:
        paid_until, change = session.paid_until + seconds, Change.RECHARGED
    # A warning already given stays given (with the moment it was due) unless the new
    # warning moment is still ahead; a resume always warns again, at once if due.
    warned = session.warned and change is Change.RECHARGED and paid_until - policy.warning_before_s <= now
    warn_at = session.warn_at if warned else warning_moment(paid_until, now, policy)
    return _next(
        session,
        now,
        change,
        state=State.ACTIVE,
        paid_until=paid_until,
        warn_at=warn_at,
        warned=warned,
        expire_at=None,
        paid_seconds_total=session.paid_seconds_total + seconds,
        last_added_seconds=seconds,
        recharge_request_ids=(*session.recharge_request_ids, request_id),
    )


def end(session: Session, ended_by: str, now: float) -> Session | None:
    """End explicitly; None when already ENDED (idempotent)."""
    if session.state is State.ENDED:
        return None
    if session.state is State.EXPIRED:
        raise FailedPrecondition("session already EXPIRED")
    return _next(
        session,
        now,
        Change.ENDED,
        state=State.ENDED,
        warn_at=None,
        expire_at=None,
        end_time=now,
        ended_by=ended_by,
    )


def due_transition(session: Session, now: float) -> TimerKind | None:
    """The timer transition due at `now`, if any."""
    if session.state is State.ACTIVE:
        if now >= session.paid_until:
            return TimerKind.PAUSE
        if not session.warned and session.warn_at is not None and now >= session.warn_at:
            return TimerKind.WARN
        return None
    if session.state is State.PAUSED_FOR_RECHARGE and session.expire_at is not None:
        return TimerKind.EXPIRE if now >= session.expire_at else None
    return None


def fire(session: Session, now: float, policy: Policy) -> Session | None:
    """Apply the transition due at `now` (None when nothing is due)."""
    kind = due_transition(session, now)
    if kind is TimerKind.WARN:
        return _next(session, now, Change.WARNED, warned=True)
    if kind is TimerKind.PAUSE:
        return _next(
            session,
            now,
            Change.PAUSED,
            state=State.PAUSED_FOR_RECHARGE,
            warn_at=None,
            expire_at=session.paid_until + policy.recharge_grace_s,
            pause_count=session.pause_count + 1,
        )
    if kind is TimerKind.EXPIRE:
        return _next(session, now, Change.EXPIRED, state=State.EXPIRED, end_time=now)
    return None


def next_timer(session: Session) -> tuple[TimerKind, float] | None:
    """When the session's next timer must fire, and what it does."""
    if session.state is State.ACTIVE:
        if not session.warned and session.warn_at is not None and session.warn_at < session.paid_until:
            return TimerKind.WARN, session.warn_at
        return TimerKind.PAUSE, session.paid_until
    if session.state is State.PAUSED_FOR_RECHARGE and session.expire_at is not None:
        return TimerKind.EXPIRE, session.expire_at
    return None


def _next(session: Session, now: float, change: Change, **changes: object) -> Session:
    return dataclasses.replace(
        session,
        version=session.version + 1,
        update_time=now,
        last_change=change,
        **changes,  # type: ignore[arg-type]
    )
