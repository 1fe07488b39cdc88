"""The local mesh behind `mesh up` / `mesh down` / `mesh status`: the embedded
MongoDB-compatible server (unless MONGO_URL names one), the local RabbitMQ, the
six services on their fixed ports and Envoy, with logs and pid files in .data/."""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from mesh import gateway
from mesh.auth import ensure_keys
from mesh.client import health_status
from mesh.processes import port_open, read_pid, spawn, terminate, wait_until
from mesh.topology import GATEWAY_PORT, MONGO_PORT, SERVICES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalPaths:
    """Where the local mesh keeps its state."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / ".data"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def run(self) -> Path:
        return self.data / "run"

    @property
    def keys(self) -> Path:
        return self.data / "keys"

    def pid(self, name: str) -> Path:
        return self.run / f"{name}.pid"


def project_root() -> Path:
    return Path(os.environ.get("SWITCHBOARD_ROOT", Path.cwd())).resolve()


def mongo_url() -> str:
    return os.environ.get("MONGO_URL", f"mongodb://127.0.0.1:{MONGO_PORT}/?directConnection=true")


def rabbitmq_url() -> str:
    return os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def start_embedded_mongo(paths: LocalPaths, port: int = MONGO_PORT) -> None:
    """nx-27017 (through mesh.embedded_mongo) on SQLite files under .data/mongo."""
    if read_pid(paths.pid("mongo")) or port_open(port):
        return
    data_dir = paths.data / "mongo"
    data_dir.mkdir(parents=True, exist_ok=True)
    spawn(
        [sys.executable, "-m", "mesh.embedded_mongo", "--data-dir", str(data_dir), "--port", str(port)],
        log_path=paths.logs / "mongo.log",
        pid_path=paths.pid("mongo"),
    )
    if not wait_until(lambda: port_open(port), 20):
        raise SystemExit(f"embedded MongoDB did not open port {port}; see {paths.logs / 'mongo.log'}")


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


def _local_node_pid() -> int | None:
    found = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True)
    pids = found.stdout.split()
    return int(pids[0]) if found.returncode == 0 and pids else None


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


def service_env(paths: LocalPaths, name: str, grpc_port: int, metrics_port: int) -> dict[str, str]:
    return {
        "SERVICE_NAME": name,
        "GRPC_PORT": str(grpc_port),
        "METRICS_PORT": str(metrics_port),
        "MONGO_URL": mongo_url(),
        "RABBITMQ_URL": rabbitmq_url(),
        "JWT_PUBLIC_KEY_FILE": str(paths.keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(paths.keys / "jwt.key"),
        "LOG_FILE": str(paths.logs / f"{name}.json.log"),
        "PYTHONUNBUFFERED": "1",
    }


def up(paths: LocalPaths) -> float:
    """Start everything that is not running yet; returns seconds until all SERVING."""
    started = time.monotonic()
    paths.logs.mkdir(parents=True, exist_ok=True)
    ensure_keys(paths.keys / "jwt.key", paths.keys / "jwt.pub")
    if "MONGO_URL" not in os.environ:
        start_embedded_mongo(paths)
    ensure_rabbitmq(rabbitmq_url())
    for spec in SERVICES:
        if read_pid(paths.pid(spec.name)):
            continue
        spawn(
            [sys.executable, "-m", spec.module],
            log_path=paths.logs / f"{spec.name}.log",
            env=service_env(paths, spec.name, spec.grpc_port, spec.metrics_port),
            pid_path=paths.pid(spec.name),
            cwd=paths.root,
        )
    start_gateway(paths)
    for spec in SERVICES:
        if not wait_until(partial(_is_serving, f"127.0.0.1:{spec.grpc_port}"), 60, 0.2):
            raise SystemExit(f"{spec.name} is not SERVING; see {paths.logs / (spec.name + '.log')}")
    if not wait_until(lambda: port_open(GATEWAY_PORT), 30):
        raise SystemExit(f"envoy did not open port {GATEWAY_PORT}; see {paths.logs / 'envoy.log'}")
    return time.monotonic() - started


def _is_serving(target: str) -> bool:
    return health_status(target) == "SERVING"


def start_gateway(paths: LocalPaths) -> None:
    if read_pid(paths.pid("envoy")):
        return
    config = gateway.render_local(paths.data / "envoy.yaml", paths.keys)
    envoy = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    spawn(
        [envoy, "-c", str(config), "--log-level", "warn", "--disable-hot-restart"],
        log_path=paths.logs / "envoy.log",
        pid_path=paths.pid("envoy"),
    )


def down(paths: LocalPaths) -> list[str]:
    """Stop what `up` started (services first, the store last); returns their names."""
    stopped = []
    for name in ["envoy", *(s.name for s in SERVICES), "mongo"]:
        pid = read_pid(paths.pid(name))
        if pid is not None:
            terminate(pid)
            stopped.append(name)
        paths.pid(name).unlink(missing_ok=True)
    return stopped


def status() -> list[tuple[str, str, str]]:
    """(service, address, health) for each service, plus the gateway."""
    rows = [
        (spec.name, f"127.0.0.1:{spec.grpc_port}", health_status(f"127.0.0.1:{spec.grpc_port}"))
        for spec in SERVICES
    ]
    rows.append(
        ("gateway", f"127.0.0.1:{GATEWAY_PORT}", "LISTENING" if port_open(GATEWAY_PORT) else "UNREACHABLE")
    )
    return rows


def all_serving(rows: list[tuple[str, str, str]]) -> bool:
    return all(h == "SERVING" for n, _, h in rows if n != "gateway")
