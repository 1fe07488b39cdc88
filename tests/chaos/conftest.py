"""The whole mesh for chaos scenarios: a private embedded MongoDB (so restarting it
hurts no other test), the six services (order_svc twice) on free ports with names
no other test uses, and an Envoy gateway in front that balances over both order
replicas. Each scenario gets its own mesh: faults leave nothing behind."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mesh.gateway import EnvoyProcess, GatewaySettings, Upstream, local_upstreams
from tests.e2e.gateway_harness import start_envoy
from tests.support.broker import delete_matching
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique

# Short intervals so every failure resolves within seconds (scheduler, outbox, chat).
FAST = {
    "HEARTBEAT_INTERVAL_S": "0.2",
    "WORKER_LEASE_S": "1.5",
    "RETRY_DELAY_S": "0.2",
    "DISPATCH_INTERVAL_S": "0.2",
    "PROGRESS_MIN_INTERVAL_S": "0",
    "OUTBOX_SWEEP_INTERVAL_S": "0.5",
    "CHAT_GAP_CHECK_S": "0.3",
    "CHAT_MEMBERSHIP_CHECK_S": "0.5",
    # One retry delay: half the quorum queues per consumer (the shared broker pays for each).
    "BUS_RETRY_DELAYS_MS": "[200]",
}
SERVICE_NAMES = ("order", "chat", "session", "registration", "scheduler", "activity")


@dataclass
class Mesh:
    """Six services (two order replicas) behind one Envoy, on a private MongoDB."""

    tag: str
    mongo: EmbeddedMongo
    services: dict[str, ServiceProcess]
    order_replicas: list[ServiceProcess]
    envoy: EnvoyProcess
    listen_port: int
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The gateway's address for native gRPC."""
        return f"127.0.0.1:{self.listen_port}"

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(self.target)
        self.channels.append(channel)
        return channel

    def restart_mongo(self, down_s: float) -> float:
        """Stop the store, keep it down `down_s`, start it again on the same port and
        data; returns the seconds it was unreachable."""
        began = time.monotonic()
        self.mongo.stop()
        time.sleep(down_s)
        self.mongo.start(same_port=True)
        return time.monotonic() - began

    def stop(self) -> None:
        for channel in self.channels:
            channel.close()
        self.envoy.stop()
        for process in [*self.services.values(), *self.order_replicas]:
            process.stop()
        self.mongo.stop()


def _service_env(mongo: EmbeddedMongo, keys: Path, tag: str, name: str) -> dict[str, str]:
    return {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(keys / "jwt.key"),
        "METRICS_PORT": "0",
        "SHUTDOWN_GRACE_S": "5",
        "HEALTH_CHECK_INTERVAL_S": "0.2",
        # One database per service, as `make up` has them (jobs collections of
        # registration and scheduler would clash in one).
        "MONGO_DB": f"{tag}_{name}",
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        **FAST,
    }


def start_mesh(tmp_path: Path, keys: Path, **settings: object) -> Mesh:
    """Start everything; raise with the failing log when something is not SERVING."""
    tag = unique("cx")
    mongo = EmbeddedMongo(tmp_path / "mongo").start()
    logs = tmp_path / "logs"
    services = {
        name: ServiceProcess(f"{name}_svc", _service_env(mongo, keys, tag, name), logs)
        for name in SERVICE_NAMES
    }
    second_order = ServiceProcess("order_svc", _service_env(mongo, keys, tag, "order"), logs)
    replicas = [services["order"], second_order]
    every = [*services.values(), second_order]
    # ServiceProcess.start moves to another port when a free port was taken meanwhile,
    # so scheduler_svc learns activity_svc's address only once that one is SERVING.
    first = [p for p in every if p is not services["scheduler"]]
    try:
        with ThreadPoolExecutor(len(first)) as pool:
            list(pool.map(lambda p: p.start(timeout_s=40), first))
        services["scheduler"].env["ACTIVITY_TARGET"] = services["activity"].target
        services["scheduler"].start(timeout_s=40)
    except Exception:
        for process in every:
            process.stop()
        mongo.stop()
        raise
    upstreams: list[Upstream] = []
    for upstream in local_upstreams({n: p.port for n, p in services.items()}):
        if upstream.name == "order":
            upstream = Upstream(
                upstream.name,
                upstream.host,
                upstream.port,
                upstream.grpc_services,
                extra_ports=(second_order.port,),
            )
        upstreams.append(upstream)
    gateway_settings = GatewaySettings(
        rate_limit_rps=5000,
        rate_limit_burst=5000,
        health_check_interval_s=0.3,
        **settings,  # type: ignore[arg-type]
    )
    try:
        listen, envoy = start_envoy(tmp_path, keys, upstreams, gateway_settings)
    except RuntimeError:
        for process in every:
            process.stop()
        mongo.stop()
        raise
    return Mesh(tag, mongo, services, replicas, envoy, listen)


@pytest.fixture
def mesh(keys: Path, tmp_path: Path) -> Iterator[Mesh]:
    """A fresh whole mesh; its queues and exchange are removed afterwards."""
    started = start_mesh(tmp_path, keys)
    yield started
    started.stop()
    delete_matching(f"^{re.escape(started.tag)}[._]")


@dataclass
class Tally:
    """Counts of a load generator: requests made, accepted, and the errors seen."""

    requests: int = 0
    accepted: int = 0
    retried: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, code: grpc.StatusCode) -> None:
        with self.lock:
            self.errors[code.name] = self.errors.get(code.name, 0) + 1


class Load:
    """`threads` loops calling `one(i)` until stopped; `one` returns normally when
    its request was accepted (retrying itself as a client would)."""

    def __init__(self, one: Callable[[int], None], threads: int = 4) -> None:
        self.one = one
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]
        self._counter = 0

    def _next(self) -> int:
        with self.tally.lock:
            self._counter += 1
            self.tally.requests += 1
            return self._counter

    def _run(self, _: int) -> None:
        while not self._stop.is_set():
            i = self._next()
            try:
                self.one(i)
            except grpc.RpcError as error:
                self.tally.error(error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN)
                continue
            with self.tally.lock:
                self.tally.accepted += 1
            self._stop.wait(0.02)  # bounded traffic: a few dozen requests per second

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def retrying(call: Callable[[], object], tally: Tally, deadline_s: float = 45.0) -> object:
    """What a well-behaved client does: retry UNAVAILABLE (and a lost deadline) with
    the same request, hence the same idempotency key, until `deadline_s`."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            tally.error(code)
            if time.monotonic() > end:
                raise
            with tally.lock:
                tally.retried += 1
            time.sleep(0.1)


@contextlib.contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """`rabbitmqctl stop_app` for the block; the broker is always started again."""
    env = {**os.environ, "HOME": "/var/lib/rabbitmq"}
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, env=env, capture_output=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, env=env, capture_output=True, timeout=120)
