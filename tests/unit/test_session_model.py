"""The paid-session state machine (pure domain, no I/O)."""

from __future__ import annotations

import pytest

from mesh.errors import FailedPrecondition
from session_svc import model
from session_svc.model import Change, Policy, State, TimerKind

POLICY = Policy(warning_before_s=60, recharge_grace_s=300)
T0 = 1_000_000.0


def started(prepaid: int = 600) -> model.Session:
    return model.start("s1", "alice", "bob", "", prepaid, "r1", T0, POLICY)


def test_started_session_schedules_the_warning_first() -> None:
    assert model.next_timer(started()) == (TimerKind.WARN, T0 + 540)


def test_warning_then_pause_at_paid_until() -> None:
    warned = model.fire(started(), T0 + 540, POLICY)
    assert warned is not None and warned.last_change is Change.WARNED and warned.state is State.ACTIVE
    assert model.next_timer(warned) == (TimerKind.PAUSE, T0 + 600)
    paused = model.fire(warned, T0 + 600, POLICY)
    assert paused is not None and paused.state is State.PAUSED_FOR_RECHARGE
    assert paused.expire_at == T0 + 900
    assert model.next_timer(paused) == (TimerKind.EXPIRE, T0 + 900)


def test_firing_before_anything_is_due_changes_nothing() -> None:
    assert model.fire(started(), T0 + 10, POLICY) is None


def test_late_firing_pauses_without_a_separate_warning() -> None:
    paused = model.fire(started(), T0 + 5000, POLICY)
    assert paused is not None and paused.state is State.PAUSED_FOR_RECHARGE and paused.pause_count == 1


def test_recharge_of_active_session_extends_paid_until() -> None:
    recharged = model.recharge(started(), 120, "r2", T0 + 10, POLICY)
    assert recharged.paid_until == T0 + 720 and recharged.last_change is Change.RECHARGED
    assert recharged.paid_seconds_total == 720 and recharged.version == 2


def test_recharge_of_paused_session_resumes_from_now() -> None:
    paused = model.fire(started(), T0 + 600, POLICY)
    assert paused is not None
    resumed = model.recharge(paused, 100, "r2", T0 + 700, POLICY)
    assert resumed.state is State.ACTIVE and resumed.paid_until == T0 + 800
    assert resumed.last_change is Change.RESUMED and resumed.expire_at is None


def test_paused_session_expires_after_the_grace_period() -> None:
    paused = model.fire(started(), T0 + 600, POLICY)
    assert paused is not None
    expired = model.fire(paused, T0 + 900, POLICY)
    assert expired is not None and expired.state is State.EXPIRED and expired.end_time == T0 + 900
    assert model.next_timer(expired) is None


def test_ending_twice_is_idempotent_and_ending_expired_is_refused() -> None:
    ended = model.end(started(), "alice", T0 + 1)
    assert ended is not None and ended.state is State.ENDED
    assert model.end(ended, "alice", T0 + 2) is None
    paused = model.fire(started(), T0 + 600, POLICY)
    assert paused is not None
    expired = model.fire(paused, T0 + 900, POLICY)
    assert expired is not None
    with pytest.raises(FailedPrecondition):
        model.end(expired, "alice", T0 + 901)


def test_terminal_session_cannot_be_recharged() -> None:
    ended = model.end(started(), "alice", T0 + 1)
    assert ended is not None
    with pytest.raises(FailedPrecondition):
        model.recharge(ended, 10, "r2", T0 + 2, POLICY)


def test_remaining_seconds_count_only_while_active() -> None:
    session = started(600)
    assert session.remaining_seconds(T0 + 100) == 500
    paused = model.fire(session, T0 + 600, POLICY)
    assert paused is not None and paused.remaining_seconds(T0 + 601) == 0
