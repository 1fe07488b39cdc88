"""The gateway under pressure and failure: throttling per route, an upstream that
dies (503 at once, no hang) and comes back (served again once its health check
passes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh.gateway import GatewaySettings
from mesh.processes import wait_until
from tests.e2e.gateway_harness import Gateway, start_gateway, start_services
from tests.support.processes import EmbeddedMongo


@pytest.fixture
def order_gateway(mongo: EmbeddedMongo, keys: Path, tmp_path: Path) -> Iterator[Gateway]:
    """order_svc alone behind an Envoy that allows 2 requests per second per route."""
    services = start_services(["order"], mongo, keys, tmp_path / "logs")
    settings = GatewaySettings(rate_limit_rps=2, rate_limit_burst=2, health_check_interval_s=0.3)
    gateway = start_gateway(tmp_path, keys, services, settings)
    yield gateway
    gateway.stop()


def test_requests_over_the_route_rate_get_429(order_gateway: Gateway, token: Callable[..., str]) -> None:
    alice = token("alice", "customer")
    answers = [order_gateway.request("GET", "/v1/orders", alice) for _ in range(8)]
    statuses = [a.status for a in answers]
    assert 429 in statuses
    assert statuses[0] != 429  # the bucket starts full
    limited = answers[statuses.index(429)]
    assert limited.headers["content-type"] == "application/json"
    assert limited.json()["code"] == 8  # RESOURCE_EXHAUSTED, as google.rpc.Status


def test_rate_limit_is_counted_per_route(order_gateway: Gateway, token: Callable[..., str]) -> None:
    alice = token("alice", "customer")
    while order_gateway.request("GET", "/v1/orders", alice).status != 429:
        pass
    assert order_gateway.request("GET", "/v1/orders/o-1", alice).status != 429


def test_upstream_down_gives_503_and_recovers_after_restart(
    order_gateway: Gateway, token: Callable[..., str]
) -> None:
    alice = token("alice", "customer")

    def status() -> int:
        return order_gateway.request("GET", "/v1/orders/o-1", alice).status

    order = order_gateway.services["order"]
    order.kill()
    assert wait_until(lambda: status() == 503, 10, 0.4)
    down = order_gateway.request("GET", "/v1/orders/o-1", alice)
    assert down.headers["content-type"] == "application/json"
    assert down.json()["code"] == 14  # UNAVAILABLE, as google.rpc.Status
    order.start()
    assert wait_until(lambda: status() not in (503, 429), 15, 0.4)
