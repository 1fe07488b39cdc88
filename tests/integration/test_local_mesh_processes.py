"""`mesh up` / `mesh down` / `mesh status` tell the truth about processes: the whole
local mesh (embedded store, six services, Envoy) under its supervisor, in a private
data directory on free ports, killed and tampered with as an operator would.

Every `mesh up` runs under a parent that never reaps orphans (tests/support/
no_reap_parent.py), as PID 1 of a container without an init: a killed supervisor then
stays a zombie, the case a bare `kill(pid, 0)` mistook for a live process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from mesh import local
from mesh.client import health_status
from mesh.processes import ProcessIdentity, free_port, listening_on, wait_until
from mesh.supervisor import SupervisorState
from mesh.topology import SERVICES
from tests.support.broker import delete_matching
from tests.support.processes import ROOT, STARTED

pytestmark = pytest.mark.timeout(900)
MESH_CLI = (sys.executable, "-m", "mesh.cli")
NO_REAP_PARENT = ROOT / "tests" / "support" / "no_reap_parent.py"
# Variables of the test run that would point the mesh at other stores or keys.
INHERITED_OUT = ("MONGO_URL", "MONGO_DB", "JWT_PUBLIC_KEY_FILE", "JWT_PRIVATE_KEY_FILE", "GRPC_PORT")


def _free_ports() -> dict[str, int]:
    names = [s.name for s in SERVICES] + ["mongo", "gateway", "gateway_admin"]
    ports: dict[str, int] = {}
    while len(ports) < len(names):  # distinct: free_port() may hand out one twice
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    ports.update({f"{s.name}_metrics": 0 for s in SERVICES})
    return ports


@dataclass
class LocalMesh:
    """One private local mesh and the commands an operator runs on it."""

    data_dir: Path
    tag: str
    ports: dict[str, int] = field(default_factory=_free_ports)
    parents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_OUT}
        env.update(
            MESH_LOCAL_DATA_DIR=str(self.data_dir),
            MESH_LOCAL_PORTS=json.dumps(self.ports),
            MESH_LOCAL_UP_TIMEOUT_S="90",
            MESH_LOCAL_STOP_TIMEOUT_S="10",
            MESH_LOCAL_RESTART_INITIAL_S="0.2",
            SWITCHBOARD_ROOT=str(ROOT),
            EVENTS_EXCHANGE=f"{self.tag}.events",
            QUEUE_PREFIX=f"{self.tag}.",
            GATEWAY_REUSE_PORT="false",
            HEALTH_CHECK_INTERVAL_S="0.2",
            SHUTDOWN_GRACE_S="2",
        )
        return env

    @property
    def layout(self) -> local.LocalLayout:
        settings = local.LocalSettings(data_dir=self.data_dir, ports=self.ports)
        return local.LocalLayout(local.LocalPaths(ROOT, self.data_dir), settings)

    def mesh(self, *args: str, timeout_s: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MESH_CLI, *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def up(self, timeout_s: float = 150) -> tuple[int, str]:
        """`mesh up` under a parent that never reaps; (exit code, output). A free port
        that a parallel test took first is refused before anything starts: new ports."""
        for _ in range(3):
            code, output = self._up(timeout_s)
            if code == 0 or "is held by" not in output:
                return code, output
            self.ports = _free_ports()
        return code, output

    def _up(self, timeout_s: float) -> tuple[int, str]:
        rc_file = self.data_dir.parent / f"up-{uuid.uuid4().hex[:8]}.rc"
        out_file = rc_file.with_suffix(".out")
        with open(out_file, "wb") as out:
            parent = subprocess.Popen(
                [sys.executable, str(NO_REAP_PARENT), str(rc_file), "--", *MESH_CLI, "up"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.parents.append(parent)
        STARTED.append(parent)
        assert wait_until(rc_file.exists, timeout_s, 0.1), f"mesh up still running after {timeout_s} s"
        return int(rc_file.read_text()), out_file.read_text()

    def state(self) -> SupervisorState:
        return SupervisorState.read(self.layout.paths.state)

    def identity(self, name: str) -> ProcessIdentity:
        identity = self.state().identity(name)
        assert identity is not None, f"no running {name} recorded"
        return identity

    def serving(self, name: str) -> bool:
        return health_status(f"127.0.0.1:{self.ports[name]}", timeout_s=1.0) == "SERVING"

    def store_answers(self) -> bool:
        return local.store_answers(f"mongodb://127.0.0.1:{self.ports['mongo']}/?directConnection=true")

    def everything_answers(self) -> bool:
        return local.first_unready(self.layout) is None

    def kill_supervisor_and_wait_for_its_programs(self) -> SupervisorState:
        """kill -9 the supervisor; its programs follow it (SIGTERM from the kernel)."""
        state = self.state()
        assert state.supervisor is not None
        os.kill(state.supervisor.pid, signal.SIGKILL)
        programs = [i for n in state.programs if (i := state.identity(n)) is not None]
        assert wait_until(lambda: not any(i.running() for i in programs), 30, 0.1)
        return state

    def close(self) -> None:
        self.mesh("down")
        for parent in self.parents:
            if parent.poll() is None:
                parent.terminate()
                parent.wait(10)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    tag = f"lm_{uuid.uuid4().hex[:10]}"
    local_mesh = LocalMesh(tmp_path_factory.mktemp("local-mesh") / "data", tag)
    yield local_mesh
    local_mesh.close()
    delete_matching(f"^{re.escape(tag)}[._]")


@pytest.fixture
def running(mesh: LocalMesh) -> LocalMesh:
    code, output = mesh.up()
    assert code == 0, output
    return mesh


def test_up_returns_only_when_every_dependency_answers(running: LocalMesh) -> None:
    assert running.store_answers()
    for spec in SERVICES:
        identity = running.identity(spec.name)
        assert listening_on(identity.pid, running.ports[spec.name]), spec.name
        assert running.serving(spec.name), spec.name
    assert local.gateway_live(running.ports["gateway_admin"])
    status = running.mesh("status")
    assert status.returncode == 0, status.stdout
    assert str(running.identity("order").pid) in status.stdout


def test_supervisor_restarts_a_killed_service_by_itself(running: LocalMesh) -> None:
    before = running.identity("chat")
    restarts = running.state().restarts("chat")
    os.kill(before.pid, signal.SIGKILL)

    def replaced() -> bool:
        now = running.state().identity("chat")
        return now is not None and now != before and running.serving("chat")

    assert wait_until(replaced, 60, 0.2)
    assert running.state().restarts("chat") == restarts + 1


def test_up_right_after_kill_9_of_a_service_returns_once_its_replacement_serves(running: LocalMesh) -> None:
    killed = running.identity("order")
    os.kill(killed.pid, signal.SIGKILL)

    code, output = running.up()

    assert code == 0, output
    replacement = running.identity("order")
    assert replacement.pid != killed.pid
    assert listening_on(replacement.pid, running.ports["order"])
    assert running.serving("order")


def test_up_after_the_store_was_killed_returns_with_the_store_answering(running: LocalMesh) -> None:
    killed = running.identity("mongo")
    os.kill(killed.pid, signal.SIGKILL)

    code, output = running.up()

    assert code == 0, output
    assert running.identity("mongo").pid != killed.pid
    assert running.store_answers()  # not "every service SERVING and nothing on the port"
    assert all(running.serving(s.name) for s in SERVICES)


def test_a_zombie_supervisor_counts_as_dead_and_up_starts_the_mesh_again(running: LocalMesh) -> None:
    old = running.kill_supervisor_and_wait_for_its_programs().supervisor
    assert old is not None
    assert psutil.Process(old.pid).status() == psutil.STATUS_ZOMBIE  # nobody reaps it

    code, output = running.up()

    assert code == 0, output
    new = running.state().supervisor
    assert new is not None and new.pid != old.pid and new.running()
    assert running.everything_answers()


def test_records_naming_an_unrelated_process_neither_block_up_nor_let_down_signal_it(
    running: LocalMesh,
) -> None:
    stranger = subprocess.Popen(["sleep", "300"])
    STARTED.append(stranger)
    try:
        running.kill_supervisor_and_wait_for_its_programs()
        # What survives a crash once the pids are reused: every record names the stranger.
        paths = running.layout.paths
        recorded = json.loads(paths.state.read_text())
        recorded["supervisor"]["pid"] = stranger.pid
        for entry in recorded["programs"].values():
            if entry["identity"]:
                entry["identity"]["pid"] = stranger.pid
        paths.state.write_text(json.dumps(recorded))
        for name in ("supervisor", "order", "mongo"):
            paths.pid(name).write_text(str(stranger.pid))

        down = running.mesh("down")
        assert down.returncode == 0 and "nothing was running" in down.stdout, down.stdout
        assert stranger.poll() is None

        paths.state.write_text(json.dumps(recorded))
        code, output = running.up()
        assert code == 0, output
        assert running.identity("order").pid != stranger.pid and running.serving("order")

        down = running.mesh("down")
        assert down.returncode == 0 and "order" in down.stdout, down.stdout
        assert stranger.poll() is None  # still alive: never signalled
    finally:
        stranger.kill()
        stranger.wait(10)


def test_an_unreadable_state_file_is_no_process_of_ours(mesh: LocalMesh) -> None:
    mesh.mesh("down")
    mesh.layout.paths.state.parent.mkdir(parents=True, exist_ok=True)
    mesh.layout.paths.state.write_text(str(os.getpid()))  # an old plain pid file, naming this test
    down = mesh.mesh("down")
    assert down.returncode == 0 and "nothing was running" in down.stdout, down.stdout


def test_up_fails_loudly_when_a_port_is_held_by_another_process(mesh: LocalMesh) -> None:
    mesh.mesh("down")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", mesh.ports["order"]))
        squatter.listen()

        code, output = mesh._up(timeout_s=60)

    assert code != 0
    assert f"port {mesh.ports['order']} (order) is held by pid {os.getpid()}" in output
    supervisor = mesh.state().supervisor
    assert supervisor is None or not supervisor.running()


def test_down_stops_everything_it_started_and_frees_every_port(running: LocalMesh) -> None:
    state = running.state()
    programs = [i for n in state.programs if (i := state.identity(n)) is not None]
    assert len(programs) == len(SERVICES) + 2  # the store and Envoy too

    down = running.mesh("down")

    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(i.running() for i in programs)
    assert state.supervisor is not None and not state.supervisor.running()
    assert local.listeners({p for p in running.ports.values() if p}) == {}
    status = running.mesh("status")
    assert status.returncode == 1  # nothing answers, and status says so
