"""The local mesh behind `mesh up` / `mesh down` / `mesh status`: the embedded
MongoDB-compatible server (unless MONGO_URL names one), the local RabbitMQ, the six
services and Envoy, run by one supervisor process (mesh.supervisor) with logs and
state under the data directory (`.data/`, or MESH_LOCAL_DATA_DIR).

`up` reports success only once every dependency answers (the store a ping, the broker
an AMQP handshake, each service SERVING from the process we started, Envoy LIVE);
`down` signals only processes whose recorded identity (pid, start time, command
line) still matches, so a reused pid or a stale file never stops a stranger."""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pika
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from mesh import gateway
from mesh.auth import ensure_keys
from mesh.client import health_status
from mesh.processes import (
    listeners,
    listening_on,
    port_open,
    spawn,
    stop_identified,
    wait_until,
    write_json_atomically,
)
from mesh.supervisor import Backoff, Plan, Program, SupervisorState
from mesh.topology import GATEWAY_ADMIN_PORT, GATEWAY_PORT, MONGO_PORT, SERVICES

log = logging.getLogger(__name__)
# The names MESH_LOCAL_PORTS may set: each service, its metrics endpoint, the store
# and the gateway's two listeners.
PORT_NAMES = frozenset(
    [s.name for s in SERVICES]
    + [f"{s.name}_metrics" for s in SERVICES]
    + ["mongo", "gateway", "gateway_admin"]
)


class LocalSettings(BaseSettings):
    """Where and on which ports the local mesh runs (`MESH_LOCAL_*`), so a test or a
    second mesh on the same machine never shares a data directory or a port."""

    model_config = SettingsConfigDict(env_prefix="MESH_LOCAL_", case_sensitive=False, extra="ignore")

    data_dir: Path | None = Field(None, description="state, logs and keys (default <root>/.data)")
    ports: dict[str, int] = Field(
        default_factory=dict,
        description='JSON, e.g. {"order": 50155, "order_metrics": 0, "mongo": 27117, "gateway": 8180}; '
        "unnamed ports keep their mesh.topology value",
    )
    up_timeout_s: float = Field(90.0, gt=0, description="longest wait for every dependency to answer")
    stop_timeout_s: float = Field(20.0, gt=0, description="SIGTERM to SIGKILL, per program")
    restart_initial_s: float = Field(0.5, gt=0, description="first restart delay of a crashed program")
    restart_max_s: float = Field(10.0, gt=0, description="longest restart delay")
    restart_stable_after_s: float = Field(30.0, gt=0, description="uptime that resets the backoff")

    @field_validator("ports")
    @classmethod
    def _known_ports(cls, ports: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(ports) - PORT_NAMES)
        if unknown:
            raise ValueError(f"unknown port name(s) {unknown}; known: {sorted(PORT_NAMES)}")
        bad = sorted(name for name, port in ports.items() if not 0 <= port <= 65535)
        if bad:
            raise ValueError(f"port(s) out of range: {bad}")
        return ports


@dataclass(frozen=True)
class LocalPaths:
    """Where the local mesh keeps its state."""

    root: Path
    data_dir: Path | None = None

    @classmethod
    def from_env(cls, settings: LocalSettings | None = None) -> LocalPaths:
        settings = settings or LocalSettings()
        data = settings.data_dir.resolve() if settings.data_dir else None
        return cls(project_root(), data)

    @property
    def data(self) -> Path:
        return self.data_dir or self.root / ".data"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def run(self) -> Path:
        return self.data / "run"

    @property
    def keys(self) -> Path:
        return self.data / "keys"

    @property
    def state(self) -> Path:
        """What the supervisor records (mesh.supervisor.SupervisorState)."""
        return self.run / "supervisor.json"

    def pid(self, name: str) -> Path:
        """A plain pid file for operators (`kill $(cat ...)`); never trusted by `down`."""
        return self.run / f"{name}.pid"


@dataclass(frozen=True)
class LocalLayout:
    """The local mesh's paths and ports, resolved from `LocalSettings`."""

    paths: LocalPaths
    settings: LocalSettings

    @classmethod
    def from_env(cls) -> LocalLayout:
        settings = LocalSettings()
        return cls(LocalPaths.from_env(settings), settings)

    def port(self, name: str) -> int:
        defaults = {"mongo": MONGO_PORT, "gateway": GATEWAY_PORT, "gateway_admin": GATEWAY_ADMIN_PORT}
        for spec in SERVICES:
            defaults[spec.name] = spec.grpc_port
            defaults[f"{spec.name}_metrics"] = spec.metrics_port
        return self.settings.ports.get(name, defaults[name])

    @property
    def embedded_store(self) -> bool:
        return "MONGO_URL" not in os.environ

    @property
    def mongo_url(self) -> str:
        return os.environ.get("MONGO_URL", f"mongodb://127.0.0.1:{self.port('mongo')}/?directConnection=true")

    def owned_ports(self) -> dict[str, int]:
        """The ports our programs will listen on (0: none)."""
        ports = {spec.name: self.port(spec.name) for spec in SERVICES}
        ports.update({f"{s.name}_metrics": self.port(f"{s.name}_metrics") for s in SERVICES})
        ports.update(gateway=self.port("gateway"), gateway_admin=self.port("gateway_admin"))
        if self.embedded_store:
            ports["mongo"] = self.port("mongo")
        return {name: port for name, port in ports.items() if port}


def project_root() -> Path:
    return Path(os.environ.get("SWITCHBOARD_ROOT", Path.cwd())).resolve()


class SigningKeyNotFound(Exception):
    """No private key to sign tokens with where the mesh keeps it."""


def signing_key(explicit: Path | None = None, cwd: Path | None = None) -> Path:
    """The private key the local mesh's services trust, for `mesh token` and `mesh chat`.

    Where it is said (`explicit`, else JWT_PRIVATE_KEY_FILE, else MESH_LOCAL_DATA_DIR)
    only there: a setting that names a missing key is an error, never a fall-back.
    Otherwise `.data/keys/jwt.key` in SWITCHBOARD_ROOT, the current folder or one of its
    parents, then beside the installed project. Never creates a key: one made up here
    would sign tokens no service trusts (only `mesh up` makes the pair)."""
    named = explicit or _env_path("JWT_PRIVATE_KEY_FILE")
    data_dir = _env_path("MESH_LOCAL_DATA_DIR")
    if named is None and data_dir is not None:
        named = data_dir / "keys" / "jwt.key"
    if named is not None:
        if named.is_file():
            return named.resolve()
        raise SigningKeyNotFound(f"no signing key at {named}")
    here = (cwd or Path.cwd()).resolve()
    roots = [_env_path("SWITCHBOARD_ROOT"), here, *here.parents, Path(__file__).resolve().parents[1]]
    looked = []
    for root in dict.fromkeys(r for r in roots if r is not None):
        candidate = root / ".data" / "keys" / "jwt.key"
        if candidate.is_file():
            return candidate
        looked.append(str(candidate.parent))
    raise SigningKeyNotFound(
        "no signing key found (looked in " + ", ".join(looked) + "); start the mesh with `mesh up` "
        "in the repository, or name the key with --key-file or JWT_PRIVATE_KEY_FILE"
    )


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


def mongo_url() -> str:
    return LocalLayout.from_env().mongo_url


def rabbitmq_url() -> str:
    return os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


RABBITMQ_HOME = "/var/lib/rabbitmq"
RABBITMQ_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _as_rabbitmq_user() -> bool:
    return (
        os.geteuid() == 0
        and os.path.exists(RABBITMQ_SCRIPT)
        and shutil.which("setpriv") is not None
        and subprocess.run(["id", "rabbitmq"], capture_output=True).returncode == 0
    )


def rabbitmq_start_command(server: str) -> list[str]:
    """How to start the local broker. Debian's wrapper switches user with `su`, whose PAM
    session drops the open-files limit to 1024; a node with a few hundred quorum queues
    then runs out of handles and stops accepting connections. As root we switch user with
    `setpriv` (no PAM) and give the node the hard limit instead."""
    if not _as_rabbitmq_user():
        return [server, "-detached"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return [
        "prlimit", f"--nofile={limit}:{limit}",
        "setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups",
        "env", f"--chdir={RABBITMQ_HOME}", f"HOME={RABBITMQ_HOME}", RABBITMQ_SCRIPT, "-detached",
    ]


# Extra nodes (tests.support.rabbit_cluster) carry this in their VM's arguments.
EXTRA_NODE_MARK = "-switchboard_extra_node"


def _local_node_pid() -> int | None:
    """The machine's default node's VM: never one of the extra nodes beside it."""
    found = subprocess.run(["pgrep", "-af", "beam.smp.*rabbit"], capture_output=True, text=True)
    for line in found.stdout.splitlines():
        pid, _, args = line.partition(" ")
        if EXTRA_NODE_MARK not in args:
            return int(pid)
    return None


def open_files_limit(pid: int) -> int | None:
    """The soft open-files limit of a running process (None: unknown or unlimited)."""
    try:
        lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else None
    return None


def ensure_rabbitmq(url: str, min_open_files: int = 0) -> None:
    """Use the broker at `url`; start the local one when it is installed and stopped.

    With `min_open_files`, a local node running with fewer open files (started by
    Debian's wrapper: 1,024) is restarted the way `rabbitmq_start_command` starts it;
    only between test runs, as it drops every connection."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    local = host in ("127.0.0.1", "localhost")
    server = shutil.which("rabbitmq-server")
    if port_open(port, host):
        if local and server and min_open_files and _as_rabbitmq_user():
            _restart_if_starved(server, port, min_open_files)
        return
    if not local or server is None:
        raise SystemExit(f"RabbitMQ is not reachable at {host}:{port}")
    if _local_node_pid() is not None:
        # A node runs but does not answer (booting, or out of file descriptors):
        # a second node would only fight it for the port.
        if not wait_until(lambda: port_open(port, host), 60, 0.5):
            raise SystemExit(f"a RabbitMQ node runs but {host}:{port} does not answer")
        return
    _start_node(server, port)


def _restart_if_starved(server: str, port: int, min_open_files: int) -> None:
    pid = _local_node_pid()
    limit = None if pid is None else open_files_limit(pid)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = min_open_files if hard == resource.RLIM_INFINITY else min(min_open_files, hard)
    if pid is None or limit is None or limit >= wanted:
        return  # enough, or as many as a restart could give it
    print(f"the local RabbitMQ may open only {limit} files: restarting it with the hard limit")
    ctl = shutil.which("rabbitmqctl")
    if ctl is not None:
        subprocess.run([ctl, "stop"], check=False, capture_output=True, timeout=120)
    if not wait_until(lambda: not port_open(port) and _local_node_pid() is None, 60, 0.5):
        stuck = _local_node_pid()
        if stuck is not None:
            os.kill(stuck, signal.SIGKILL)
        wait_until(lambda: _local_node_pid() is None, 10, 0.2)
    _start_node(server, port)


def _start_node(server: str, port: int, timeout_s: float = 90) -> None:
    subprocess.run(rabbitmq_start_command(server), check=False)
    if not wait_until(lambda: port_open(port), timeout_s, 0.5):
        raise SystemExit(f"the local RabbitMQ did not start within {timeout_s:.0f} s")


def service_env(layout: LocalLayout, name: str) -> dict[str, str]:
    paths = layout.paths
    return {
        "SERVICE_NAME": name,
        "GRPC_PORT": str(layout.port(name)),
        "METRICS_PORT": str(layout.port(f"{name}_metrics")),
        "MONGO_URL": layout.mongo_url,
        "RABBITMQ_URL": rabbitmq_url(),
        "JWT_PUBLIC_KEY_FILE": str(paths.keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(paths.keys / "jwt.key"),
        "LOG_FILE": str(paths.logs / f"{name}.json.log"),
        "PYTHONUNBUFFERED": "1",
    }


def plan(layout: LocalLayout, envoy_config: Path) -> Plan:
    """The programs of the local mesh, in start order: the store, the services, Envoy."""
    paths, settings = layout.paths, layout.settings
    programs = []
    if layout.embedded_store:
        programs.append(
            Program(
                name="mongo",
                argv=[
                    sys.executable, "-m", "mesh.embedded_mongo",
                    "--data-dir", str(paths.data / "mongo"), "--port", str(layout.port("mongo")),
                ],
                log_path=paths.logs / "mongo.log",
                ready_port=layout.port("mongo"),
            )
        )
    programs += [
        Program(
            name=spec.name,
            argv=[sys.executable, "-m", spec.module],
            log_path=paths.logs / f"{spec.name}.log",
            env=service_env(layout, spec.name),
            cwd=paths.root,
        )
        for spec in SERVICES
    ]
    programs.append(
        Program(
            name="envoy",
            # No hot restart: Envoy then needs no shared memory region of its own (--base-id).
            argv=[gateway.envoy_binary(), "-c", str(envoy_config), "--disable-hot-restart", "-l", "warn"],
            log_path=paths.logs / "envoy.log",
        )
    )
    return Plan(
        programs=programs,
        state_path=paths.state,
        run_dir=paths.run,
        backoff=Backoff(settings.restart_initial_s, settings.restart_max_s, settings.restart_stable_after_s),
        stop_timeout_s=settings.stop_timeout_s,
    )


def up(layout: LocalLayout | None = None) -> float:
    """Start the mesh unless our supervisor already runs it; return the seconds until
    every dependency answered (SystemExit, naming what and its log, when one does not)."""
    layout = layout or LocalLayout.from_env()
    paths = layout.paths
    started = time.monotonic()
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    ensure_keys(paths.keys / "jwt.key", paths.keys / "jwt.pub")  # the only place keys are made
    ensure_rabbitmq(rabbitmq_url())
    supervisor: subprocess.Popen[bytes] | None = None
    state = SupervisorState.read(paths.state)
    if not (state.supervisor is not None and state.supervisor.running()):
        _stop_leftovers(layout, state)
        _refuse_taken_ports(layout)
        supervisor = _start_supervisor(layout)
    deadline = time.monotonic() + layout.settings.up_timeout_s
    waiting_for: Unready | None = None
    while time.monotonic() < deadline:
        waiting_for = first_unready(layout, supervisor)
        if waiting_for is None:
            return time.monotonic() - started
        if waiting_for.fatal:
            break
        time.sleep(0.2)
    assert waiting_for is not None
    still = "" if waiting_for.fatal else " (still retried: see `mesh status`; `mesh down` stops all)"
    raise SystemExit(f"mesh up failed: {waiting_for.what}; see {waiting_for.log}{still}")


def _start_supervisor(layout: LocalLayout) -> subprocess.Popen[bytes]:
    paths = layout.paths
    config = gateway.render_to(
        paths.data / "envoy.yaml",
        paths.keys,
        listen_port=layout.port("gateway"),
        admin_port=layout.port("gateway_admin"),
        upstreams=gateway.local_upstreams({s.name: layout.port(s.name) for s in SERVICES}),
    )
    (paths.data / "mongo").mkdir(parents=True, exist_ok=True)
    plan_path = paths.run / "plan.json"
    write_json_atomically(plan_path, plan(layout, config).to_json())
    return spawn(
        [sys.executable, "-m", "mesh.supervisor", "--plan", str(plan_path)],
        log_path=paths.logs / "supervisor.log",
        pid_path=paths.pid("supervisor"),
        cwd=paths.root,
    )


@dataclass(frozen=True)
class Unready:
    """The first dependency that does not answer yet; `fatal`: it never will."""

    what: str
    log: Path
    fatal: bool = False


def first_unready(layout: LocalLayout, supervisor: subprocess.Popen[bytes] | None = None) -> Unready | None:
    """None once every dependency answers, checked in one pass (cheap checks first)."""
    paths = layout.paths
    state = SupervisorState.read(paths.state)
    supervisor_log = paths.logs / "supervisor.log"
    if supervisor is not None and supervisor.poll() is not None:
        return Unready(f"the supervisor exited with {supervisor.returncode}", supervisor_log, True)
    if state.supervisor is None or not state.supervisor.running():
        if supervisor is None:
            return Unready("the supervisor is not running", supervisor_log, True)
        return Unready("the supervisor has not started its programs", supervisor_log)
    store_port = layout.port("mongo")
    if layout.embedded_store and not _ours_listening(state, "mongo", store_port):
        return Unready(f"the embedded store is not listening on {store_port}", paths.logs / "mongo.log")
    for spec in SERVICES:
        port = layout.port(spec.name)
        if not _ours_listening(state, spec.name, port):
            return Unready(f"{spec.name} is not listening on {port}", paths.logs / f"{spec.name}.log")
        health = health_status(f"127.0.0.1:{port}", timeout_s=1.0)
        if health != "SERVING":
            return Unready(f"{spec.name} is {health}", paths.logs / f"{spec.name}.json.log")
    gateway_port = layout.port("gateway")
    if not (_ours_listening(state, "envoy", gateway_port) and gateway_live(layout.port("gateway_admin"))):
        return Unready(f"envoy is not LIVE on {gateway_port}", paths.logs / "envoy.log")
    if not store_answers(layout.mongo_url):
        return Unready(f"the store at {layout.mongo_url} does not answer a ping", paths.logs / "mongo.log")
    if not broker_answers(rabbitmq_url()):
        return Unready("RabbitMQ does not complete an AMQP handshake", paths.logs / "supervisor.log")
    return None


def _ours_listening(state: SupervisorState, name: str, port: int) -> bool:
    """The process the supervisor started for `name` still runs and holds `port` (an
    answer on the port from anyone else is no proof that ours is up)."""
    identity = state.identity(name)
    return identity is not None and identity.running() and listening_on(identity.pid, port)


def store_answers(url: str, timeout_ms: int = 1000) -> bool:
    client: MongoClient[dict[str, Any]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def broker_answers(url: str, timeout_s: float = 2.0) -> bool:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = timeout_s
    parameters.blocked_connection_timeout = timeout_s
    try:
        pika.BlockingConnection(parameters).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def gateway_live(admin_port: int) -> bool:
    """Envoy's /ready: LIVE once its listeners are up and every cluster was health-checked."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as response:
            body: bytes = response.read()
            return body.decode().strip() == "LIVE"
    except (OSError, urllib.error.URLError):
        return False


def _refuse_taken_ports(layout: LocalLayout) -> None:
    """Fail before starting anything when a port we need is held by another process:
    otherwise a stranger would answer (or a program would crash-loop) in our place."""
    ports = layout.owned_ports()
    held = listeners(set(ports.values()))
    for name, port in ports.items():
        holders = held.get(port)
        if holders:
            who = ", ".join(f"pid {h.pid} ({' '.join(h.cmdline)[:80] or '?'})" for h in holders)
            raise SystemExit(
                f"mesh up failed: port {port} ({name}) is held by {who}; stop it, or give the local "
                "mesh other ports (MESH_LOCAL_PORTS)"
            )


def _stop_leftovers(layout: LocalLayout, state: SupervisorState) -> list[str]:
    """Programs a dead supervisor recorded that still run as recorded (they ignored the
    kernel's SIGTERM): ours, so stopped. Any other process is left alone."""
    stopped = []
    for name in state.programs:
        identity = state.identity(name)
        if identity is not None and stop_identified(identity, layout.settings.stop_timeout_s):
            stopped.append(name)
    return stopped


def down(layout: LocalLayout | None = None) -> list[str]:
    """Stop what `up` started; returns the names of what was running. Only processes
    whose recorded identity still matches are signalled."""
    layout = layout or LocalLayout.from_env()
    paths = layout.paths
    state = SupervisorState.read(paths.state)
    stopped: list[str] = []
    if state.supervisor is not None and state.supervisor.running():
        stopped = [n for n in state.programs if (i := state.identity(n)) is not None and i.running()]
        # The supervisor stops its programs in order; time for each group, then a margin.
        stop_identified(state.supervisor, 2 * layout.settings.stop_timeout_s + 10)
        stopped.append("supervisor")
    stopped += [n for n in _stop_leftovers(layout, state) if n not in stopped]
    paths.state.unlink(missing_ok=True)
    for name in ["supervisor", *state.programs]:
        paths.pid(name).unlink(missing_ok=True)
    return stopped


@dataclass(frozen=True)
class StatusRow:
    """One line of `mesh status`."""

    name: str
    address: str
    health: str
    pid: int | None = None
    restarts: int = 0


def status(layout: LocalLayout | None = None) -> list[StatusRow]:
    """The store, each service and the gateway: health, the pid the supervisor runs
    (only if it is still that process) and how often it restarted it."""
    layout = layout or LocalLayout.from_env()
    state = SupervisorState.read(layout.paths.state)
    supervised = state.supervisor is not None and state.supervisor.running()

    def pid(name: str) -> int | None:
        identity = state.identity(name)
        return identity.pid if supervised and identity is not None and identity.running() else None

    rows = []
    if layout.embedded_store:
        port = layout.port("mongo")
        health = "SERVING" if store_answers(layout.mongo_url) else "UNREACHABLE"
        rows.append(StatusRow("mongo", f"127.0.0.1:{port}", health, pid("mongo"), state.restarts("mongo")))
    for spec in SERVICES:
        target = f"127.0.0.1:{layout.port(spec.name)}"
        rows.append(
            StatusRow(spec.name, target, health_status(target), pid(spec.name), state.restarts(spec.name))
        )
    port = layout.port("gateway")
    live = "SERVING" if gateway_live(layout.port("gateway_admin")) else "UNREACHABLE"
    rows.append(StatusRow("gateway", f"127.0.0.1:{port}", live, pid("envoy"), state.restarts("envoy")))
    return rows


def all_serving(rows: list[StatusRow]) -> bool:
    return all(row.health == "SERVING" for row in rows)
