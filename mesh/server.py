"""Service bootstrap on grpc.aio: health that follows the service's dependencies,
reflection, the interceptor chain, metrics, background workers and a graceful
SIGTERM shutdown that drains in-flight calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from mesh.auth import AccessPolicy, TokenVerifier
from mesh.broker import BrokerProbe
from mesh.config import MeshConfig
from mesh.interceptors import MeshInterceptor
from mesh.store import Store
from mesh.telemetry import configure_logging, start_metrics_endpoint
from mesh.tls import ReloadingServerCredentials

log = logging.getLogger(__name__)
LIVENESS = "liveness"  # the health entry Kubernetes liveness probes ask for


class Worker(Protocol):
    """A background task owned by the server (outbox relay, consumers, timers)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Dependency:
    """Something the service needs to serve: checked every health interval."""

    name: str
    check: Callable[[], bool]
    healthy: bool = False


class MeshServer:
    """One Switchboard service process. Services add servicers, dependencies and
    workers, then `run()`; everything else (health, reflection, auth, shutdown)
    is the same for all of them."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        configure_logging(config.service_name, config.log_level, config.log_file)
        self._services: list[tuple[str, Callable[[grpc.aio.Server], None]]] = []
        self._dependencies: list[Dependency] = []
        self._workers: list[Worker] = []
        self._store: Store | None = None
        self._closers: list[Callable[[], None]] = []
        self._health = HealthServicer()
        self._serving: bool | None = None
        self._stopping = asyncio.Event()
        self.port: int = 0
        self.health_port: int = 0
        self.tls: ReloadingServerCredentials | None = None

    @property
    def store(self) -> Store:
        """The service's MongoDB database; created on first use, and health follows it."""
        if self._store is None:
            self._store = Store(self.config.mongo_url, self.config.database, self.config.mongo_timeout_ms)
            self.add_dependency("mongodb", self._store.ping)
        return self._store

    def use_store(self) -> Store:
        """Declare that the service needs MongoDB (health goes NOT_SERVING without it)."""
        return self.store

    def use_broker(self) -> None:
        """Declare that the service needs RabbitMQ (health goes NOT_SERVING without it)."""
        probe = BrokerProbe(self.config.rabbitmq_url)
        self.add_dependency("rabbitmq", probe.check)
        self._closers.append(probe.close)

    def add_service(
        self, full_name: str, servicer: Any, register: Callable[[Any, grpc.aio.Server], None]
    ) -> None:
        """Mount a servicer, e.g. `add_service("switchboard.order.v1.OrderService",
        OrderServicer(...), add_OrderServiceServicer_to_server)`."""
        self._services.append((full_name, lambda server: register(servicer, server)))

    def add_dependency(self, name: str, check: Callable[[], bool]) -> None:
        self._dependencies.append(Dependency(name, check))

    def add_worker(self, worker: Worker) -> None:
        self._workers.append(worker)

    def run(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(self.config.blocking_workers, thread_name_prefix="blocking")
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        start_metrics_endpoint(self.config.metrics_port)
        server = self._build_server()
        self.port = self._bind(server)
        probes = await self._start_health_port()
        await self._set_serving(False)
        # Liveness only says the process answers: a dependency outage must take the
        # replica out of load balancing (readiness, ""), not restart it.
        await self._health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        log.info("listening", extra={"port": self.port, "services": [n for n, _ in self._services]})
        monitor = asyncio.create_task(self._watch_dependencies(), name="health-monitor")
        for worker in self._workers:
            await worker.start()
        await self._stopping.wait()
        await self._shutdown(server, monitor)
        if probes is not None:
            await probes.stop(0)

    def _bind(self, server: grpc.aio.Server) -> int:
        """The service port: mTLS (a client certificate from the mesh CA) when MESH_TLS is on."""
        address = f"{self.config.grpc_host}:{self.config.grpc_port}"
        if not self.config.mesh_tls:
            return server.add_insecure_port(address)
        self.tls = ReloadingServerCredentials(self.config.tls_files)
        return server.add_secure_port(address, self.tls.credentials)

    async def _start_health_port(self) -> grpc.aio.Server | None:
        """Kubelet's gRPC probes speak no TLS: with HEALTH_PORT set, the same health
        statuses are also served in plaintext there, and nothing else (docs/adr/0003)."""
        if not self.config.health_port:
            return None
        probes = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, probes)
        self.health_port = probes.add_insecure_port(f"{self.config.grpc_host}:{self.config.health_port}")
        await probes.start()
        return probes

    def _build_server(self) -> grpc.aio.Server:
        names = [name for name, _ in self._services]
        verifier = None
        if self.config.jwt_public_key_file.exists():
            verifier = TokenVerifier.from_file(
                self.config.jwt_public_key_file, self.config.jwt_issuer, self.config.jwt_audience
            )
        else:
            log.warning(
                "no JWT public key: every authenticated RPC will be refused",
                extra={"path": str(self.config.jwt_public_key_file)},
            )
        interceptor = MeshInterceptor(
            AccessPolicy.from_services(names), verifier, self.config.default_deadline_s
        )
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.keepalive_time_ms", 20000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        for _, register in self._services:
            register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        return server

    async def _watch_dependencies(self) -> None:
        """Re-check every dependency each interval; health follows the worst of them."""
        while not self._stopping.is_set():
            results = await asyncio.gather(
                *(asyncio.to_thread(_safe_check, d.check) for d in self._dependencies)
            )
            for dependency, healthy in zip(self._dependencies, results, strict=True):
                if dependency.healthy != healthy:
                    log.warning("dependency %s is %s", dependency.name, "up" if healthy else "down")
                dependency.healthy = healthy
            await self._set_serving(all(results))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.health_check_interval_s)

    async def _set_serving(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *(n for n, _ in self._services)]:
            await self._health.set(name, status)

    async def _shutdown(self, server: grpc.aio.Server, monitor: asyncio.Task[None]) -> None:
        log.info("shutting down", extra={"grace_s": self.config.shutdown_grace_s})
        await self._health.enter_graceful_shutdown()
        monitor.cancel()
        await server.stop(self.config.shutdown_grace_s)
        for worker in reversed(self._workers):
            try:
                await worker.stop()
            except Exception:
                log.exception("worker %s failed to stop", worker.name)
        for close in self._closers:
            close()
        if self._store is not None:
            self._store.close()
        log.info("stopped")

    def request_stop(self) -> None:
        self._stopping.set()


def _safe_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
