"""A process is ours only if its identity matches: pid, start time and command line,
and not a zombie (mesh.processes), with real child processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from mesh.processes import ProcessIdentity, pid_alive, stop_identified, wait_until
from mesh.supervisor import Backoff


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait(10)


def test_a_live_process_is_recognised_by_its_recorded_identity(sleeper: subprocess.Popen[bytes]) -> None:
    identity = ProcessIdentity.of(sleeper.pid)
    assert identity is not None and identity.cmdline == ("sleep", "300")
    assert ProcessIdentity.from_json(identity.to_json()) == identity
    assert identity.running()


def test_a_zombie_is_dead() -> None:
    process = subprocess.Popen(["true"])
    identity = ProcessIdentity(process.pid, 0.0, ())
    recorded = None
    try:
        assert wait_until(lambda: ProcessIdentity.of(process.pid) is None, 10)
        assert not pid_alive(process.pid)  # exited, not yet reaped: kill(pid, 0) would still succeed
        assert not identity.running()
    finally:
        recorded = process.wait(5)
    assert recorded == 0


def test_a_reused_pid_is_not_the_process_recorded(sleeper: subprocess.Popen[bytes]) -> None:
    now = ProcessIdentity.of(sleeper.pid)
    assert now is not None
    started_earlier = now._replace(create_time=now.create_time - 60)
    other_program = now._replace(cmdline=("python", "-m", "order_svc"))
    assert not started_earlier.running()
    assert not other_program.running()


def test_stop_identified_never_signals_a_process_whose_identity_differs(
    sleeper: subprocess.Popen[bytes],
) -> None:
    now = ProcessIdentity.of(sleeper.pid)
    assert now is not None
    assert stop_identified(now._replace(cmdline=("python", "-m", "order_svc")), timeout_s=1) is False
    assert sleeper.poll() is None
    assert stop_identified(now, timeout_s=5) is True
    assert not now.running()


@pytest.mark.parametrize("data", [None, 123, "x", {"pid": "1"}, {"pid": 1, "create_time": 1.0}, {"pid": -1}])
def test_a_malformed_record_names_no_process(data: object) -> None:
    assert ProcessIdentity.from_json(data) is None


def test_restart_backoff_doubles_up_to_its_ceiling() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
