"""Batches against the embedded MongoDB: mesh.timers hands the firings that are due
together to one call, session_svc applies them in one transaction while keeping each
session's compare-and-set, and starts that arrive together share one transaction."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from mesh.outbox import Outbox
from mesh.processes import wait_until
from mesh.store import Store
from mesh.timers import DurableTimers, Firing, TimersConfig
from session_svc import handlers, repository, starts
from session_svc.config import SessionConfig
from session_svc.model import State
from session_svc.notify import ChangeNotifier
from session_svc.starts import start_batcher
from tests.support.processes import EmbeddedMongo, unique


def _config(mongo: EmbeddedMongo, cls: type[TimersConfig] = TimersConfig, **extra: Any) -> Any:
    return cls(
        mongo_url=mongo.url,
        mongo_db=unique("batch"),
        events_exchange=f"{unique('batch')}.events",
        timers_lease_ttl_s=2.0,
        timers_standby_poll_s=0.05,
        timers_redeliver_after_s=0.5,
        timers_fallback_wakeup_s=0.2,
        **extra,
    )


class Recorder:
    """A batch handler that records each call; the first call waits until every
    scheduled timer was submitted, so the rest arrive together."""

    def __init__(self, retry_once: Collection[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.submitted = threading.Event()
        self._retry_once = set(retry_once)
        self._lock = threading.Lock()

    def __call__(self, firings: list[Firing]) -> list[str]:
        if not self.calls:
            self.submitted.wait(10)
        with self._lock:
            self.calls.append([f.key for f in firings])
            retry = [f.key for f in firings if f.key in self._retry_once]
            self._retry_once.difference_update(retry)
        return retry

    def handled(self) -> list[str]:
        with self._lock:
            return [key for call in self.calls for key in call]


@pytest.fixture
def run_timers(mongo: EmbeddedMongo) -> Iterator[Any]:
    started: list[DurableTimers] = []

    def run(recorder: Recorder | None, handler: Any = None) -> DurableTimers:
        timers = DurableTimers(
            _config(mongo),
            "batch",
            "tests.integration.test_session_timer_batches:fire",
            handler or _unused,
            batch_handler=recorder,
        )
        timers.start_sync()
        started.append(timers)
        assert wait_until(lambda: timers.is_runner, 10)
        return timers

    yield run
    for timers in started:
        timers.stop_sync()


def fire(runner_id: str, key: str, token: str, payload: dict[str, Any]) -> None:
    from mesh.timers import deliver

    deliver(runner_id, key, token, payload)


def _unused(key: str, payload: dict[str, Any]) -> None:
    raise AssertionError("a batch handler is configured: single firings never run")


def _all_submitted(timers: DurableTimers, run_at: float, count: int) -> bool:
    return timers.jobs.count_documents({"next_run_time": {"$gt": run_at}}) >= count


def test_timers_due_together_reach_the_batch_handler_together(run_timers: Any) -> None:
    recorder = Recorder()
    timers = run_timers(recorder)
    run_at = time.time() + 1.0
    keys = [f"k{i}" for i in range(20)]
    timers.schedule_many([(key, run_at, {"n": i}) for i, key in enumerate(keys)])

    def release_first_call() -> None:
        wait_until(lambda: _all_submitted(timers, run_at, len(keys)), 10)
        recorder.submitted.set()

    threading.Thread(target=release_first_call, daemon=True).start()
    assert wait_until(lambda: timers.jobs.count_documents({}) == 0, 20)  # all completed
    assert sorted(recorder.handled()) == sorted(keys)  # each once, none redelivered after completion
    assert len(recorder.calls) < len(keys) // 2  # the first call took one; the rest came in batches


def test_keys_a_batch_handler_returns_are_redelivered_and_the_rest_completed(run_timers: Any) -> None:
    recorder = Recorder(retry_once={"b"})
    recorder.submitted.set()
    timers = run_timers(recorder)
    timers.schedule_many([(key, time.time() + 0.3, {}) for key in ("a", "b", "c")])
    assert wait_until(lambda: recorder.handled().count("b") == 2, 15)
    assert recorder.handled().count("a") == 1 and recorder.handled().count("c") == 1
    assert wait_until(lambda: timers.jobs.count_documents({}) == 0, 5)


def test_a_single_handler_that_raises_is_redelivered_until_it_completes(run_timers: Any) -> None:
    calls: list[str] = []

    def flaky(key: str, payload: dict[str, Any]) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")

    timers = run_timers(None, flaky)
    timers.schedule("only", time.time() + 0.3, {})
    assert wait_until(lambda: timers.jobs.count_documents({}) == 0, 15)
    assert calls == ["only", "only"]


# session_svc's batch handler, in process ------------------------------------------------


@pytest.fixture
def deps(mongo: EmbeddedMongo) -> Iterator[handlers.Deps]:
    config = _config(mongo, SessionConfig, session_warning_before_s=0.0)
    store = Store(config.mongo_url, config.database)
    timers = DurableTimers(config, "session", "session_svc.timers:fire", lambda key, payload: None)
    repository.ensure_indexes(store.db[repository.COLLECTION])
    yield handlers.Deps(config, store, Outbox(store, config), timers, ChangeNotifier())
    timers.client.close()
    store.close()


def _start(deps: handlers.Deps, seconds: int = 60) -> Any:
    command = handlers.StartSession("customer", "advisor", seconds, "", uuid.uuid4().hex)
    return handlers.start_session(command, deps)


def _firing(deps: handlers.Deps, session: Any) -> Firing:
    job = deps.timers.jobs.find_one({"_id": session.timer_key})
    assert job is not None
    payload = {"session_id": session.id, "version": session.version, "run_at": session.paid_until}
    return Firing(session.timer_key, job["token"], payload)


def test_a_batch_of_due_sessions_pauses_each_once_with_its_own_event(
    deps: handlers.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = [_start(deps) for _ in range(5)]
    firings = [_firing(deps, s) for s in sessions]
    # one transaction for all: falling back to single turns would fail the test
    monkeypatch.setattr(handlers, "on_timer", lambda *args: pytest.fail("fell back to single turns"))
    assert handlers.on_timers(firings, deps) == []
    assert handlers.on_timers(firings, deps) == []  # a redelivered batch changes nothing
    stored = {s.id: deps.repository.get(s.id) for s in sessions}
    assert all(
        s is not None and s.state is State.PAUSED_FOR_RECHARGE and s.pause_count == 1 for s in stored.values()
    )
    paused = deps.store.db.outbox.count_documents({"type": "session.paused.v1"})
    assert paused == 5
    # each paused session names its next (expiry) timer, which exists in the store
    assert all(
        s is not None and deps.timers.next_run_at(s.timer_key or "") is not None for s in stored.values()
    )


def test_a_stale_firing_in_a_batch_changes_nothing_while_the_others_pause(deps: handlers.Deps) -> None:
    moved, due = _start(deps), _start(deps)
    stale = _firing(deps, moved)
    recharged = handlers.recharge(handlers.Recharge(moved.id, 60, uuid.uuid4().hex), _customer(), deps)
    assert handlers.on_timers([stale, _firing(deps, due)], deps) == []
    after = deps.repository.get(moved.id)
    assert after is not None and after.state is State.ACTIVE and after.version == recharged.version
    paused = deps.repository.get(due.id)
    assert paused is not None and paused.state is State.PAUSED_FOR_RECHARGE


def test_a_session_changed_after_planning_stays_changed_and_its_planned_timer_fires_on_nothing(
    deps: handlers.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved, due = _start(deps), _start(deps)
    firings = [_firing(deps, moved), _firing(deps, due)]
    planned: list[tuple[Any, int]] = []
    plan = handlers._plan_firings

    def plan_then_recharge(deps: handlers.Deps, firings: list[Firing]) -> list[tuple[Any, int]]:
        planned.extend(plan(deps, firings))  # schedules the paused sessions' expiry timers
        handlers.recharge(handlers.Recharge(moved.id, 60, uuid.uuid4().hex), _customer(), deps)
        return planned

    monkeypatch.setattr(handlers, "_plan_firings", plan_then_recharge)
    assert handlers.on_timers(firings, deps) == []  # the batch lost its compare-and-set
    monkeypatch.undo()
    after = deps.repository.get(moved.id)
    assert after is not None and after.state is State.ACTIVE and after.pause_count == 0
    paused = deps.repository.get(due.id)
    assert paused is not None and paused.state is State.PAUSED_FOR_RECHARGE and paused.pause_count == 1
    assert deps.store.db.outbox.count_documents({"type": "session.paused.v1"}) == 1
    # the expiry timer planned for the moved session exists, names no session, and fires on nothing
    orphan = next(new for new, _ in planned if new.id == moved.id)
    job = deps.timers.jobs.find_one({"_id": orphan.timer_key})
    assert job is not None and after.timer_key != orphan.timer_key
    payload = {"session_id": moved.id, "version": orphan.version, "run_at": time.time()}
    assert handlers.on_timers([Firing(orphan.timer_key, job["token"], payload)], deps) == []
    unchanged = deps.repository.get(moved.id)
    assert unchanged is not None and unchanged.version == after.version


def _customer() -> Any:
    from mesh.auth import Principal

    return Principal("customer", frozenset({"customer"}))


# group commit of starts ----------------------------------------------------------------


def _command(request_id: str = "") -> handlers.StartSession:
    return handlers.StartSession("customer", "advisor", 60, "", request_id or uuid.uuid4().hex)


def _start_together(deps: handlers.Deps, commands: list[handlers.StartSession]) -> list[Any]:
    batch = [(command, Future[Any]()) for command in commands]
    start_batcher(deps, max_batch=100).commit(batch)
    return [future.result(timeout=0) for _, future in batch]


def test_starts_batched_together_each_get_a_session_a_timer_and_an_event(
    deps: handlers.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(starts, "start_session", lambda *args: pytest.fail("fell back to single starts"))
    started = _start_together(deps, [_command() for _ in range(10)])
    assert len({s.id for s in started}) == 10
    # stored with microsecond precision (APScheduler keeps datetimes)
    assert all(deps.timers.next_run_at(s.timer_key) == pytest.approx(s.paid_until, abs=1e-5) for s in started)
    assert deps.store.db.outbox.count_documents({"type": "session.started.v1"}) == 10


def test_a_retried_start_in_a_batch_returns_the_session_it_started_first(deps: handlers.Deps) -> None:
    first = handlers.start_session(_command("retried"), deps)
    retried, new = _start_together(deps, [_command("retried"), _command()])
    assert retried.id == first.id
    assert new.id != first.id and deps.repository.get(new.id) is not None
