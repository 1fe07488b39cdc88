"""One whole mesh per test worker for the security suite: the six services on the
worker's embedded MongoDB behind an Envoy gateway, with a token minted by a key
the mesh does not trust and an expired one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mesh.auth import ensure_keys, mint_token
from mesh.gateway import GatewaySettings
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, start_gateway
from tests.support.broker import delete_matching
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique


@pytest.fixture(scope="module")
def whole_mesh(
    mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """All six services and the gateway; the rate limit is out of the way of fuzzing."""
    tmp = tmp_path_factory.mktemp("security")
    # Like gateway_harness.start_services, but ServiceProcess.start moves a service to
    # another port when its free port was taken meanwhile (seen under parallel load).
    tag = unique("sec")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(keys / "jwt.key"),
        "METRICS_PORT": "0",
        "HEALTH_CHECK_INTERVAL_S": "0.2",
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
    }
    services = {
        s.name: ServiceProcess(s.module, {**env, "MONGO_DB": f"{tag}_{s.name}"}, tmp / "logs")
        for s in SERVICES
    }
    # session_svc checks the rooms a session names with chat_svc (its port is chosen already).
    services["session"].env["CHAT_TARGET"] = services["chat"].target
    try:
        with ThreadPoolExecutor(len(services)) as pool:
            list(pool.map(lambda p: p.start(timeout_s=40), services.values()))
    except Exception:
        for process in services.values():
            process.stop()
        raise
    gateway = start_gateway(
        tmp, keys, services, GatewaySettings(rate_limit_rps=10000, rate_limit_burst=10000)
    )
    yield gateway
    gateway.stop()
    delete_matching(f"^{re.escape(tag)}[._]")


@pytest.fixture(scope="session")
def foreign_token(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A well-formed admin token signed by a key the mesh does not know."""
    directory = tmp_path_factory.mktemp("foreign-keys")
    ensure_keys(directory / "jwt.key", directory / "jwt.pub")
    return mint_token((directory / "jwt.key").read_bytes(), "mallory", ["admin"])


@pytest.fixture(scope="session")
def expired_token(keys: Path) -> str:
    """An admin token signed by the mesh's key that expired a minute ago."""
    return mint_token((keys / "jwt.key").read_bytes(), "mallory", ["admin"], ttl_s=-60)
