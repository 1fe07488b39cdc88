"""RabbitMQ nodes of our own beside the machine's default one (which stays untouched
on 5672): each with its own node name, AMQP and distribution ports, data and log
directories, sharing the broker user's Erlang cookie; three of them joined into a
cluster. For tests (failover, partitions, a broker outage that no parallel test
notices) and for people (`make cluster-up` / `make cluster-down`).

    python -m tests.support.rabbit_cluster up [--nodes 3] [--dir .data/rabbit-cluster]
    python -m tests.support.rabbit_cluster down [--dir ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mesh.local import EXTRA_NODE_MARK
from mesh.processes import free_port, port_open, wait_until
from tests.support.processes import STARTED

RABBITMQ_HOME = "/var/lib/rabbitmq"  # the broker user's home: its .erlang.cookie is shared
RABBITMQ_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# Marks our nodes' Erlang VMs, so nothing mistakes one for the machine's default node.
NODE_MARK = f"{EXTRA_NODE_MARK} true"
STATE_FILE = "cluster.json"


def _ctl_env() -> dict[str, str]:
    return {**os.environ, "HOME": RABBITMQ_HOME}


def _as_broker_user(argv: list[str], env: dict[str, str]) -> list[str]:
    """Run `argv` as the rabbitmq user (no PAM session: the hard open-files limit)."""
    assignments = [f"{key}={value}" for key, value in env.items()]
    if os.geteuid() != 0:
        return ["env", *assignments, *argv]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return [
        "prlimit", f"--nofile={limit}:{limit}",
        "setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups",
        "env", f"--chdir={RABBITMQ_HOME}", f"HOME={RABBITMQ_HOME}", *assignments, *argv,
    ]  # fmt: skip


def _open_to_broker_user(base: Path) -> None:
    """The nodes run as the rabbitmq user: every folder above `base` must let it pass."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    closed = [p for p in base.resolve().parents if not os.stat(p).st_mode & stat.S_IXOTH]
    if closed and os.geteuid() == 0:
        raise RuntimeError(f"the rabbitmq user cannot reach {base}: {closed[0]} is closed to others")


@dataclass
class RabbitNode:
    """One extra node: `name@localhost` on `port` (AMQP) and `dist_port` (clustering)."""

    name: str
    port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    def start(self) -> None:
        """Start detached (returns at once; `await_started` waits for the AMQP port)."""
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
        )
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n")  # no management listener: fewer ports, faster boot
        if os.geteuid() == 0:
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
            for path in (config, plugins):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": NODE_MARK,
        }
        # Not -detached: we own the process, see its boot output and notice its death.
        with open(self.base / "console.log", "ab") as console:
            self.process = subprocess.Popen(
                _as_broker_user([RABBITMQ_SCRIPT], env),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        STARTED.append(self.process)  # reaped at the end of a test session, whatever failed

    def await_started(self, timeout_s: float = 90) -> None:
        """The AMQP listener opens last in a node's boot: wait for it (a CLI call costs a
        second of CPU, too much to poll with)."""
        exited = lambda: self.process is not None and self.process.poll() is not None  # noqa: E731
        if not wait_until(lambda: port_open(self.port) or exited(), timeout_s, 0.2) or exited():
            console = self.base / "console.log"
            tail = console.read_text(errors="replace")[-2000:] if console.exists() else "(no output)"
            raise RuntimeError(f"{self.node} did not listen on {self.port} within {timeout_s:.0f} s:\n{tail}")

    def ctl(self, *args: str, timeout_s: float = 120, check: bool = True) -> str:
        """`rabbitmqctl -n <node> ...`; returns its output."""
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            capture_output=True,
            text=True,
            env=_ctl_env(),
            timeout=timeout_s,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.node}: {done.stdout}{done.stderr}")
        return done.stdout

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            proc_stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return proc_stat.rsplit(")", 1)[1].split()[0] != "Z"

    def kill(self) -> None:
        """kill -9 the node's VM: no shutdown code runs."""
        pid = self.pid()
        if pid is not None and self.running():
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not self.running() and not port_open(self.port), 30, 0.1)

    def stop_app(self) -> None:
        """The node stays up but leaves the cluster's work (like a partitioned node)."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.await_started()

    def stop(self) -> None:
        if self.running():
            self.ctl("stop", timeout_s=60, check=False)
        self.kill()  # whatever did not stop within the timeout


@dataclass
class RabbitCluster:
    """Three (or `size`) nodes joined into one cluster, under `base`."""

    base: Path
    nodes: list[RabbitNode]

    @classmethod
    def plan(cls, base: Path | None = None, size: int = 3) -> RabbitCluster:
        """Names and free ports for `size` nodes under `base` (default: a new directory in
        the system temp folder; pytest's own tmp folders are closed to the broker user)."""
        base = base or Path(tempfile.mkdtemp(prefix="switchboard-rabbit-"))
        _open_to_broker_user(base)
        tag = uuid.uuid4().hex[:6]
        nodes = [
            RabbitNode(f"sb{tag}n{i}", free_port(), free_port(), base / f"n{i}") for i in range(1, size + 1)
        ]
        return cls(base, nodes)

    @property
    def urls(self) -> str:
        """Every node's AMQP URL, comma-separated (the bus connects to any live one)."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout_s: float = 120) -> RabbitCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
        self._save()
        for node in self.nodes:
            node.start()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.await_started(timeout_s), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.stop_app()
            node.ctl("join_cluster", first.node)
            node.start_app()
        return self

    def running_nodes(self) -> list[str]:
        """The cluster's running members as the first live node sees them."""
        for node in self.nodes:
            if node.running():
                status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
                return sorted(status.get("running_nodes", []))
        return []

    def queue_leader(self, queue: str, vhost: str = "/") -> str:
        """The node that leads a quorum queue ("" when unknown)."""
        for node in self.nodes:
            if not node.running():
                continue
            rows = json.loads(node.ctl("list_queues", "-p", vhost, "name", "leader", "--formatter", "json"))
            for row in rows:
                if row.get("name") == queue:
                    return str(row.get("leader", ""))
        return ""

    def node(self, erlang_name: str) -> RabbitNode:
        return next(n for n in self.nodes if n.node == erlang_name)

    def remove(self) -> None:
        """Stop every node and delete its data: nothing is left behind."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _save(self) -> None:
        state = [
            {"name": node.name, "port": node.port, "dist_port": node.dist_port, "base": str(node.base)}
            for node in self.nodes
        ]
        (self.base / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, base: Path) -> RabbitCluster:
        state = json.loads((base / STATE_FILE).read_text())
        return cls(base, [RabbitNode(**{**row, "base": Path(row["base"])}) for row in state])


def main() -> None:
    parser = argparse.ArgumentParser(prog="rabbit_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".data/rabbit-cluster"))
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    base = args.dir.resolve()
    if args.command == "up":
        if (base / STATE_FILE).exists():
            raise SystemExit(f"a cluster is recorded in {base}: `down` first")
        started = time.monotonic()
        cluster = RabbitCluster.plan(base, args.nodes).start()
        print(f"cluster of {len(cluster.nodes)} up in {time.monotonic() - started:.1f} s")
        print(f"RABBITMQ_URL={cluster.urls}")
    elif not (base / STATE_FILE).exists():
        print(f"no cluster recorded in {base}")
    elif args.command == "down":
        RabbitCluster.load(base).remove()
        print("cluster removed")
    else:
        print("\n".join(RabbitCluster.load(base).running_nodes()))


if __name__ == "__main__":
    main()
