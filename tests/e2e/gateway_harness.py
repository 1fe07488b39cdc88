"""Test harness for the gateway: the mesh's service processes plus an Envoy
rendered for their ports, on free ports, and a small HTTP client for it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mesh.gateway import EnvoyProcess, GatewaySettings, Upstream, local_upstreams, render_to
from mesh.processes import free_port
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique


@dataclass
class Response:
    """An HTTP answer from the gateway."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.body)
        return value


@dataclass
class Gateway:
    """Envoy rendered for this module's service processes."""

    url: str
    envoy: EnvoyProcess
    services: dict[str, ServiceProcess]

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def stop(self) -> None:
        self.envoy.stop()
        for process in self.services.values():
            process.stop()

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5,
    ) -> Response:
        all_headers = {"content-type": "application/json", **(headers or {})}
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                # Streams stay open: the first line proves the RPC answered.
                data = answer.readline() if answer.headers.get("content-type", "").endswith("ndjson") else b""
                return Response(answer.status, dict(answer.headers.items()), data or answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers.items()), error.read())
        except TimeoutError:
            # A live stream that has nothing to say yet sends no headers either.
            return Response(0, {}, b"")


def start_envoy(
    tmp_path: Path, keys: Path, upstreams: list[Upstream], settings: GatewaySettings
) -> tuple[int, EnvoyProcess]:
    """Envoy for `upstreams` on free ports: (listen port, process). Listeners do not set
    SO_REUSEPORT, so a port another test's process took first fails the bind; then
    new ports are tried."""
    exclusive = settings.model_copy(update={"reuse_port": False})
    for attempt in range(3):
        listen, admin = free_port(), free_port()
        config = render_to(
            tmp_path / "envoy.yaml",
            keys,
            listen_port=listen,
            admin_port=admin,
            upstreams=upstreams,
            settings=exclusive,
        )
        try:
            return listen, EnvoyProcess(config, tmp_path / "envoy.log", admin).start()
        except RuntimeError as error:
            if "Address already in use" not in str(error) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def start_gateway(
    tmp_path: Path, keys: Path, services: dict[str, ServiceProcess], settings: GatewaySettings
) -> Gateway:
    """Envoy in front of `services` only (the other clusters are left out)."""
    upstreams = [u for u in local_upstreams({n: p.port for n, p in services.items()}) if u.name in services]
    listen, envoy = start_envoy(tmp_path, keys, upstreams, settings)
    return Gateway(f"http://127.0.0.1:{listen}", envoy, services)


def start_services(
    names: list[str], mongo: EmbeddedMongo, keys: Path, log_dir: Path
) -> dict[str, ServiceProcess]:
    """`<name>_svc` processes of one isolated tag (a database each, one exchange), all SERVING."""
    tag = unique("gw")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(keys / "jwt.key"),
        "METRICS_PORT": "0",
        "HEALTH_CHECK_INTERVAL_S": "0.2",
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
    }
    # One database per service, as in production: registration_svc and scheduler_svc
    # both keep a `jobs` collection, and a shared one makes the scheduler's inserts collide.
    processes = {
        name: ServiceProcess(f"{name}_svc", {**env, "MONGO_DB": f"{tag}_{name}"}, log_dir) for name in names
    }
    if "session" in processes and "chat" in processes:
        # session_svc checks the rooms it is given with this mesh's chat_svc
        processes["session"].env = {**processes["session"].env, "CHAT_TARGET": processes["chat"].target}
    for process in processes.values():
        process.start(wait_serving=False)
    for process in processes.values():
        process.wait_started(40)
    return processes
