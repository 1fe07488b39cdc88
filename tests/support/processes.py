"""Real processes for tests: an embedded MongoDB server and service processes,
each on its own free port, so tests run in parallel without sharing state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mesh.client import health_status
from mesh.processes import free_port, listening_on, spawn, terminate, wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTED: list[subprocess.Popen[bytes]] = []  # every process a test started, reaped at session end


def reap_all() -> None:
    """Kill whatever a test left running (a failed fixture, a timed-out test)."""
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@dataclass
class EmbeddedMongo:
    """The embedded MongoDB (nx-27017 via mesh.embedded_mongo) on a free port with its data in `data_dir`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, same_port: bool = False) -> EmbeddedMongo:
        """Start, moving to another free port if one was taken first, unless `same_port`
        (a restart: the services know this port, so a taken one is an error)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(1 if same_port else 3):
            self.process = spawn(
                [
                    sys.executable,
                    "-m",
                    "mesh.embedded_mongo",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                log_path=self.data_dir / "server.log",
            )
            STARTED.append(self.process)
            wait_until(lambda: self.listening() or not self.running(), 20)
            if self.listening():
                return self
            if self.running():
                break
            self.port = free_port()  # the bind failed: try another port
        raise RuntimeError(f"nx-27017 did not start on {self.port}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def listening(self) -> bool:
        """Our process holds the port (a parallel test's server may have taken it first)."""
        return self.process is not None and self.running() and listening_on(self.process.pid, self.port)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process.pid, timeout_s=5)
            self.process = None


@dataclass
class ServiceProcess:
    """`python -m <module>` with its own port; `env` adds to the test defaults."""

    module: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    was_started: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.module}-{self.port}.log"

    def start(self, wait_serving: bool = True, timeout_s: float = 30) -> ServiceProcess:
        self._spawn()
        return self.wait_started(timeout_s) if wait_serving else self

    def _spawn(self) -> None:
        self.process = spawn(
            [sys.executable, "-m", self.module],
            log_path=self.log_path,
            env={**self.env, "GRPC_PORT": str(self.port), "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
        STARTED.append(self.process)

    def wait_started(self, timeout_s: float = 30) -> ServiceProcess:
        """Wait until `started()`; when another process took the port first, move to a
        new one, unless this is a restart (others, such as Envoy, know the port)."""
        for _ in range(1 if self.was_started else 3):
            wait_until(lambda: self.started() or self.exited(), timeout_s, 0.1)
            if self.started():
                self.was_started = True
                return self
            if not (self.exited() and "bind" in self.log_path.read_text()):
                break
            self.port = free_port()
            self._spawn()
        raise RuntimeError(f"{self.module} not SERVING; log:\n{self.log_path.read_text()[-3000:]}")

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def started(self) -> bool:
        """Our process listens on our port and is SERVING. Health alone is not proof: between
        `free_port()` and the bind, a parallel test's server may take the port, and it would
        answer health for us while our process exits on the failed bind."""
        return self.process is not None and listening_on(self.process.pid, self.port) and self.serving()

    def serving(self) -> bool:
        return health_status(self.target, timeout_s=0.5) == "SERVING"

    def health(self, service: str = "") -> str:
        return health_status(self.target, service, timeout_s=1.0)

    def terminate(self) -> int | None:
        """SIGTERM; returns the exit code once the process has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process.pid, timeout_s=10)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
