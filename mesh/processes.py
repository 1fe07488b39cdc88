"""Starting, identifying and stopping local processes (embedded MongoDB, services,
Envoy); shared by the local supervisor, `mesh up`/`mesh down` and the test fixtures.

A pid alone never proves a process is ours: `ProcessIdentity` adds the start time and
the command line (psutil), and treats a zombie as dead."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import psutil


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    pid_path: Path | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a detached process (own session, so it outlives `mesh up`) logging to `log_path`.

    `die_with_parent`: the kernel sends it SIGTERM when this process dies, even by
    SIGKILL (Linux PR_SET_PDEATHSIG), so a killed supervisor leaves no orphans."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=not die_with_parent,
            preexec_fn=_die_with(os.getpid()) if die_with_parent else None,
        )
    if pid_path is not None:
        pid_path.parent.mkdir(parents=True, exist_ok=True)
        pid_path.write_text(str(process.pid))
    return process


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent_pid: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:  # runs in the child between fork and exec: no locks, no imports
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return arm


class ProcessIdentity(NamedTuple):
    """Who a process is, not only its number: a pid is reused (pid_max is 32,768 by
    default) and a pid file outlives a crash, so a process is ours only if its pid,
    start time and command line all match what we recorded, and it is not a zombie."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of the live process `pid` now (None: gone or a zombie)."""
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    return None
                return cls(pid, process.create_time(), tuple(process.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    @classmethod
    def of_self(cls) -> ProcessIdentity | None:
        return cls.of(os.getpid())

    def running(self) -> bool:
        """Whether this very process still runs (same pid, start time and command line)."""
        now = ProcessIdentity.of(self.pid)
        # create_time has the clock-tick resolution of /proc/<pid>/stat (10 ms).
        return (
            now is not None
            and abs(now.create_time - self.create_time) < 0.05
            and now.cmdline == self.cmdline
        )

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, data: Any) -> ProcessIdentity | None:
        """Parse a recorded identity; None for anything malformed (a foreign or old file)."""
        try:
            pid, create_time, cmdline = data["pid"], data["create_time"], data["cmdline"]
        except (KeyError, TypeError):
            return None
        if not (isinstance(pid, int) and pid > 0 and isinstance(create_time, int | float)):
            return None
        if not (isinstance(cmdline, list) and all(isinstance(arg, str) for arg in cmdline)):
            return None
        return cls(pid, float(create_time), tuple(cmdline))


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a process that has not exited (a zombie has exited)."""
    return ProcessIdentity.of(pid) is not None


def write_json_atomically(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(data, indent=1))
    os.replace(scratch, path)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stop_identified(identity: ProcessIdentity, timeout_s: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout_s`, the process `identity` names, and only
    if it is still that process; returns whether it was (and so was signalled)."""
    try:
        process = psutil.Process(identity.pid)
    except psutil.NoSuchProcess:
        return False
    # psutil.Process remembers the start time it saw: its signals are refused with
    # NoSuchProcess if the pid is reused between this check and the signal.
    if not identity.running():
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        try:
            process.wait(timeout_s)
        except psutil.TimeoutExpired:
            process.kill()
            with contextlib.suppress(psutil.TimeoutExpired):
                process.wait(5)
    return True


def terminate(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM our child `pid`, wait for a clean exit, then SIGKILL (callers own `pid`:
    a Popen they started; anything recorded on disk goes through `stop_identified`)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive_or_reap(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _alive_or_reap(pid)


def _alive_or_reap(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    return pid_alive(pid)


def listeners(ports: Collection[int]) -> dict[int, list[ProcessIdentity]]:
    """The processes holding a listening TCP socket on each of `ports` (any address),
    from one scan of the system's sockets; ports nobody listens on are left out."""
    found: dict[int, list[ProcessIdentity]] = {}
    for connection in psutil.net_connections(kind="tcp"):
        port = connection.laddr.port if connection.laddr else None
        if connection.status != psutil.CONN_LISTEN or port is None or port not in ports:
            continue
        identity = ProcessIdentity.of(connection.pid) if connection.pid else None
        found.setdefault(port, []).append(identity or ProcessIdentity(connection.pid or 0, 0.0, ()))
    return found


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def listening_on(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds a listening TCP socket on `port` (Linux /proc).

    A port that answers is not proof that the process we started bound it: between
    `free_port()` and the bind, another process may take the port."""
    listening = _listening_sockets(port)
    return bool(listening) and not listening.isdisjoint(_open_files(pid))


def _listening_sockets(port: int) -> set[str]:
    """The inodes ("socket:[N]") of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    found.add(f"socket:[{inode}]")
    return found


def _open_files(pid: int) -> set[str]:
    """What the process's file descriptors point at (empty if it is gone)."""
    links = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                links.add(os.readlink(fd))
    return links


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
