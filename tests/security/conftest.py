"""One whole mesh per test worker for the security suite: the six services on the
worker's embedded MongoDB behind an Envoy gateway, with a token minted by a key
the mesh does not trust and an expired one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh.auth import ensure_keys, mint_token
from mesh.gateway import GatewaySettings
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, start_gateway, start_services
from tests.support.processes import EmbeddedMongo


@pytest.fixture(scope="session")
def whole_mesh(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """All six services and the gateway; the rate limit is out of the way of fuzzing."""
    tmp = tmp_path_factory.mktemp("security")
    services = start_services([s.name for s in SERVICES], mongo, keys, tmp / "logs")
    gateway = start_gateway(tmp, keys, services, GatewaySettings(rate_limit_rps=10000, rate_limit_burst=10000))
    yield gateway
    gateway.stop()


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
