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


def _timeline(session: model.Session, until: float) -> list[tuple[Change, float]]:
    """Fire every timer of `session` at its due moment up to `until`: (change, when)."""
    seen = []
    while (due := model.next_timer(session)) is not None and due[1] <= until:
        fired = model.fire(session, due[1], POLICY)
        assert fired is not None, f"timer {due} was due but changed nothing"
        seen.append((fired.last_change, due[1]))
        session = fired
    return seen


@pytest.mark.parametrize("prepaid", [1, 30, 59, 60])
def test_session_shorter_than_the_warning_lead_is_warned_once_at_its_start(prepaid: int) -> None:
    session = started(prepaid)
    assert session.warn_at == T0  # the start: never before it
    assert _timeline(session, T0 + 10_000)[:2] == [(Change.WARNED, T0), (Change.PAUSED, T0 + prepaid)]
    assert [c for c, _ in _timeline(session, T0 + 10_000)].count(Change.WARNED) == 1


@pytest.mark.parametrize("prepaid", [1, 59, 60, 61, 600, 86_400])
def test_warning_is_never_due_before_the_start_nor_after_the_pause(prepaid: int) -> None:
    session = started(prepaid)
    assert session.warn_at is not None and T0 <= session.warn_at <= session.paid_until


def test_without_a_lead_there_is_no_warning() -> None:
    policy = Policy(warning_before_s=0, recharge_grace_s=300)
    session = model.start("s1", "alice", "bob", "", 30, "r1", T0, policy)
    assert session.warn_at == session.paid_until
    assert model.next_timer(session) == (TimerKind.PAUSE, T0 + 30)


def test_resume_with_less_than_the_lead_is_warned_at_the_resume() -> None:
    paused = model.fire(started(600), T0 + 600, POLICY)
    assert paused is not None
    resumed = model.recharge(paused, 20, "r2", T0 + 700, POLICY)
    assert resumed.warn_at == T0 + 700 and not resumed.warned
    assert _timeline(resumed, T0 + 800)[:2] == [(Change.WARNED, T0 + 700), (Change.PAUSED, T0 + 720)]


def test_recharge_leaving_less_than_the_lead_warns_at_once_if_not_warned_yet() -> None:
    session = started(30)
    warned = model.fire(session, T0, POLICY)
    assert warned is not None and warned.warned
    # warned already: a small recharge keeps the warning given (no second one)
    recharged = model.recharge(warned, 10, "r2", T0 + 5, POLICY)
    assert recharged.warned and recharged.warn_at == T0
    assert _timeline(recharged, T0 + 100)[0] == (Change.PAUSED, T0 + 40)


def test_recharge_that_moves_the_warning_ahead_warns_again_later() -> None:
    warned = model.fire(started(30), T0, POLICY)
    assert warned is not None
    recharged = model.recharge(warned, 600, "r2", T0 + 5, POLICY)
    assert not recharged.warned and recharged.warn_at == T0 + 630 - 60
    assert _timeline(recharged, T0 + 1000)[:2] == [(Change.WARNED, T0 + 570), (Change.PAUSED, T0 + 630)]


def test_expiry_is_the_grace_period_after_the_pause_never_before_the_start() -> None:
    paused = model.fire(started(1), T0 + 1, POLICY)
    assert paused is not None and paused.last_change is Change.PAUSED  # warning at T0 skipped: late
    assert paused.expire_at == T0 + 1 + POLICY.recharge_grace_s
