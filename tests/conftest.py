"""Fixtures shared by every test: an embedded MongoDB per test worker, a JWT key
pair, tokens, and isolated names (database, exchange, queues) per test."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh.auth import ensure_keys, mint_token
from tests.support.broker import delete_matching
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, reap_all, unique


def pytest_sessionfinish() -> None:
    reap_all()


@pytest.fixture(scope="module")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """One embedded MongoDB server per test module (tests use their own databases): a
    module that kills processes mid-transaction cannot slow the next one down."""
    if os.environ.get("MONGO_URL"):
        pytest.skip("MONGO_URL points at an external MongoDB; embedded server not used")
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    ensure_keys(directory / "jwt.key", directory / "jwt.pub")
    return directory


@pytest.fixture(scope="session")
def token(keys: Path) -> Callable[..., str]:
    """`token("alice", "customer")` mints a token signed with the test key."""
    private = (keys / "jwt.key").read_bytes()

    def make(user: str, *roles: str, ttl_s: float = 3600) -> str:
        return mint_token(private, user, roles, ttl_s=ttl_s)

    return make


@pytest.fixture
def isolation() -> Iterator[dict[str, str]]:
    """Names no other test uses: database, exchange and queue prefix. The test's
    queues and exchanges are deleted afterwards."""
    tag = unique("t")
    yield {"MONGO_DB": tag, "EVENTS_EXCHANGE": f"{tag}.events", "QUEUE_PREFIX": f"{tag}."}
    delete_matching(f"^{re.escape(tag)}[._]")


@pytest.fixture
def service_env(mongo: EmbeddedMongo, keys: Path, isolation: dict[str, str]) -> dict[str, str]:
    """Environment for a service process under test."""
    return {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(keys / "jwt.key"),
        "METRICS_PORT": "0",
        "SHUTDOWN_GRACE_S": "10",
        "HEALTH_CHECK_INTERVAL_S": "0.2",
        **isolation,
    }


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """`start_service("order_svc", EXTRA="1")` runs a real service process for the test."""
    started: list[ServiceProcess] = []

    def start(module: str, wait_serving: bool = True, **extra: str) -> ServiceProcess:
        process = ServiceProcess(module, {**service_env, **extra}, tmp_path / "logs")
        started.append(process)
        return process.start(wait_serving=wait_serving)

    yield start
    for process in started:
        process.stop()
