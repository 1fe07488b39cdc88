"""Watch streams deliver every change, in order, from any resume point; an idle stream
is open (headers sent) at once; stored times read back identically through Get, List
and Watch. Real session_svc, registration_svc and scheduler_svc processes."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.session.v1 import session_service_pb2 as pb

from mesh.processes import free_port, wait_until
from tests.integration.sessions_mesh import SessionUser, field_violations, start_sessions
from tests.integration.test_jobs_support import JobsMesh
from tests.support.processes import ServiceProcess

STATE_CHANGED = pb.SESSION_UPDATE_KIND_STATE_CHANGED


@pytest.fixture
def alice(start_service: Callable[..., ServiceProcess], token: Callable[..., str]) -> Iterator[SessionUser]:
    # No chat_svc: these sessions are started without a room (no check needed).
    # A tick a minute apart: a message within seconds is never a TICK.
    sessions = start_sessions(start_service, f"127.0.0.1:{free_port()}", SESSION_WATCH_TICK_S="60")
    user = SessionUser(sessions.target, token("alice", "customer"))
    yield user
    user.close()


def test_rapid_changes_reach_a_watcher_one_by_one_in_order(alice: SessionUser) -> None:
    session = alice.start()
    watch = alice.watch(session.id)
    assert wait_until(lambda: len(watch.updates) == 1, 10)
    for _ in range(3):
        alice.recharge(session.id, 60)
    alice.end(session.id)
    assert watch.ended.wait(15) and watch.error is None
    assert watch.versions() == [1, 2, 3, 4, 5]
    assert [u.kind for u in watch.changes()] == [pb.SESSION_UPDATE_KIND_SNAPSHOT] + [STATE_CHANGED] * 4
    assert [u.session.paid_seconds_total for u in watch.changes()] == [600, 660, 720, 780, 780]
    assert all(u.coalesced_from_version == 0 for u in watch.updates)


def test_watch_resumed_mid_way_delivers_each_later_version_and_no_snapshot(alice: SessionUser) -> None:
    session = alice.start()
    for _ in range(3):
        alice.recharge(session.id, 60)
    alice.end(session.id)
    resumed = alice.watch(session.id, after_version=2)
    assert resumed.ended.wait(15) and resumed.error is None
    assert resumed.versions() == [3, 4, 5]
    assert [u.kind for u in resumed.changes()] == [STATE_CHANGED] * 3
    assert resumed.changes()[-1].session.state == pb.SESSION_STATE_ENDED
    assert all(u.coalesced_from_version == 0 for u in resumed.updates)


def test_watch_resumed_at_the_current_version_waits_for_the_next(alice: SessionUser) -> None:
    session = alice.start()
    watch = alice.watch(session.id, after_version=1)
    assert watch.headers.wait(10)
    alice.recharge(session.id, 60)
    assert wait_until(lambda: watch.versions() == [2], 10)
    watch.cancel()


def test_idle_watch_sends_its_headers_at_once(alice: SessionUser) -> None:
    session = alice.start()
    idle = alice.watch(session.id, after_version=session.version)  # nothing to send until a change
    assert idle.headers.wait(10), "no headers before the first message (next TICK in 60 s)"
    assert idle.updates == [] and idle.error is None
    idle.cancel()


def test_watch_beyond_the_current_version_is_out_of_range(alice: SessionUser) -> None:
    session = alice.start()
    watch = alice.watch(session.id, after_version=7)
    assert watch.ended.wait(10) and watch.error is not None
    assert watch.error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert field_violations(watch.error) == {"after_version"}


def test_session_times_read_back_identically_through_get_list_and_watch(alice: SessionUser) -> None:
    started = alice.start()
    recharged = alice.recharge(started.id, 60)  # the stored document is rewritten
    watch = alice.watch(started.id)
    assert wait_until(lambda: len(watch.updates) == 1, 10)
    reads = [alice.get(started.id), alice.get(started.id), alice.list()[0], watch.updates[0].session]
    for read in reads:
        assert read.create_time == started.create_time
        assert read.update_time == recharged.update_time
        assert read.paid_until == recharged.paid_until and read.warn_at == recharged.warn_at
    assert started.create_time.nanos % 1_000_000 == 0  # whole milliseconds: what every store keeps
    watch.cancel()


# --- jobs ---------------------------------------------------------------------------


@pytest.fixture
def jobs(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> Iterator[JobsMesh]:
    mesh = JobsMesh.isolated(start_service, token, isolation)
    mesh.start_registration()
    mesh.start_scheduler()
    yield mesh
    mesh.close()


def _follow(call: grpc.Call, into: list[reg.WatchJobResponse], headers: threading.Event) -> None:
    try:
        call.initial_metadata()  # type: ignore[attr-defined]
        headers.set()
        into.extend(call)  # type: ignore[call-overload]
    except grpc.RpcError:
        pass


def _watch(jobs: JobsMesh, job_id: str, after: int = 0) -> tuple[list[reg.WatchJobResponse], threading.Event]:
    alice = jobs.users("alice")
    call = alice.registration.WatchJob(
        reg.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=alice.metadata, timeout=30
    )
    seen: list[reg.WatchJobResponse] = []
    headers = threading.Event()
    threading.Thread(target=_follow, args=(call, seen, headers), daemon=True).start()
    return seen, headers


def _statuses(seen: list[reg.WatchJobResponse]) -> list[int]:
    statuses: list[int] = []
    for message in seen:
        if not statuses or statuses[-1] != message.job.status:
            statuses.append(message.job.status)
    return statuses


def test_job_watch_delivers_queued_running_and_succeeded_in_order(jobs: JobsMesh) -> None:
    alice = jobs.users("alice")
    # still REGISTERED when the watch opens; runs for longer than a heartbeat (RUNNING is announced)
    job = alice.submit("sleep", run_at_s=time.time() + 2, seconds=1.0, steps=4)
    seen, _ = _watch(jobs, job.id)
    assert wait_until(lambda: bool(seen) and seen[-1].job.status == reg.JOB_STATUS_SUCCEEDED, 20)
    assert _statuses(seen) == [
        reg.JOB_STATUS_REGISTERED,
        reg.JOB_STATUS_QUEUED,
        reg.JOB_STATUS_RUNNING,
        reg.JOB_STATUS_SUCCEEDED,
    ]
    sequences = [m.job.sequence for m in seen]
    assert sequences == sorted(set(sequences))
    # Every number the scheduler skipped (its worker's claim is announced by the first
    # progress) is said so explicitly, never silently.
    for previous, message in itertools.pairwise(seen):
        gap = message.job.sequence != previous.job.sequence + 1
        assert message.coalesced_from_sequence == (previous.job.sequence + 1 if gap else 0)
    progress = [m.job.progress for m in seen if m.job.status == reg.JOB_STATUS_RUNNING]
    assert progress == sorted(progress)

    replay, _ = _watch(jobs, job.id, after=sequences[1])  # resumed after its first change
    assert wait_until(lambda: bool(replay) and replay[-1].job.status == reg.JOB_STATUS_SUCCEEDED, 10)
    assert [m.job.sequence for m in replay] == sequences[2:]
    assert [(m.job.status, m.job.progress) for m in replay] == [
        (m.job.status, m.job.progress) for m in seen[2:]
    ]


def test_job_watch_marks_a_change_the_scheduler_never_announced_as_coalesced(jobs: JobsMesh) -> None:
    alice = jobs.users("alice")
    # A no-op ends within a heartbeat: the scheduler folds its RUNNING into its end.
    job = alice.submit("noop", run_at_s=time.time() + 2)
    seen, _ = _watch(jobs, job.id)
    assert wait_until(lambda: bool(seen) and seen[-1].job.status == reg.JOB_STATUS_SUCCEEDED, 20)
    assert _statuses(seen) == [reg.JOB_STATUS_REGISTERED, reg.JOB_STATUS_QUEUED, reg.JOB_STATUS_SUCCEEDED]
    queued, succeeded = seen[-2].job.sequence, seen[-1]
    assert succeeded.job.sequence > queued + 1 and succeeded.coalesced_from_sequence == queued + 1


def test_idle_job_watch_sends_its_headers_at_once(jobs: JobsMesh) -> None:
    alice = jobs.users("alice")
    job = alice.submit("noop", run_at_s=time.time() + 60)  # nothing happens for a minute
    seen, headers = _watch(jobs, job.id)
    assert headers.wait(10)
    assert wait_until(lambda: len(seen) == 1, 10) and seen[0].job.status == reg.JOB_STATUS_REGISTERED


def test_job_times_read_back_identically_through_get_list_and_watch(jobs: JobsMesh) -> None:
    alice = jobs.users("alice")
    job = alice.submit("noop")
    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=20)
    seen, _ = _watch(jobs, job.id)
    assert wait_until(lambda: len(seen) == 1, 10)
    listed = alice.registration.ListJobs(reg.ListJobsRequest(), metadata=alice.metadata).jobs[0]
    for read in (alice.get(job.id), listed, seen[0].job):
        assert read.create_time == job.create_time == done.create_time
        assert read.update_time == done.update_time
