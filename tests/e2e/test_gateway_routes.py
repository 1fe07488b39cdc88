"""The Envoy gateway in front of all six services (real processes, real broker and
store): every REST route reaches its RPC, tokens are checked at the edge, roles
by the services, and native gRPC, gRPC-Web, CORS, /healthz, /openapi.json and the
console are served on the one listener."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from switchboard.order.v1 import order_service_pb2, order_service_pb2_grpc

from mesh.auth import ROLE_NAMES
from mesh.client import bearer
from mesh.gateway import GatewaySettings
from mesh.openapi import HttpBinding, RpcMethod, rest_methods
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, start_gateway, start_services
from tests.support.processes import EmbeddedMongo

SAMPLE_PATH_VALUES = {"date": "2026-01-02"}


@pytest.fixture(scope="module")
def gateway(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    services = start_services([s.name for s in SERVICES], mongo, keys, tmp / "logs")
    gateway = start_gateway(tmp, keys, services, GatewaySettings(rate_limit_rps=1000, rate_limit_burst=1000))
    yield gateway
    gateway.stop()


def _sample_path(binding: HttpBinding) -> str:
    path = binding.route
    for name in binding.path_params:
        path = path.replace("{" + name + "}", SAMPLE_PATH_VALUES.get(name, "x-" + name))
    return path


def _allowed_role(method: RpcMethod) -> str:
    return ROLE_NAMES[method.roles[0]]


def _upstream_of(method: RpcMethod) -> str:
    return next(s.name for s in SERVICES if method.service in s.grpc_services)


BINDINGS = [(m, b) for m in rest_methods() for b in m.bindings]


@pytest.mark.parametrize(("method", "binding"), BINDINGS, ids=[f"{b.verb} {b.path}" for _, b in BINDINGS])
def test_every_rest_route_reaches_its_rpc(
    gateway: Gateway, token: Callable[..., str], method: RpcMethod, binding: HttpBinding
) -> None:
    cluster = _upstream_of(method)
    before = gateway.envoy.stat(f"cluster.{cluster}.upstream_rq_total")
    body = b"{}" if binding.body else None
    answer = gateway.request(
        binding.verb.upper(),
        _sample_path(binding),
        token("alice", _allowed_role(method)),
        body,
        timeout_s=2 if method.server_streaming else 5,
    )
    assert gateway.envoy.stat(f"cluster.{cluster}.upstream_rq_total") > before
    if answer.status == 0:
        assert method.server_streaming, "only a live stream may stay silent"
        return
    if answer.status != 200:
        # Not an Envoy-made reply: the RPC's gRPC status came back as google.rpc.Status JSON
        # (UNIMPLEMENTED → 501 while a service is a stub; INVALID_ARGUMENT/NOT_FOUND once built).
        status = answer.json()
        assert isinstance(status["code"], int)
        assert answer.status not in (401, 429, 503), status
        assert not (status["code"] == 7 and "may not call" in str(status.get("message"))), status


def test_request_without_token_is_rejected_with_401(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/v1/orders")
    assert answer.status == 401
    assert answer.json()["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_request_with_forged_token_is_rejected_with_401(gateway: Gateway, tmp_path: Path) -> None:
    from mesh.auth import ensure_keys, mint_token

    ensure_keys(tmp_path / "other.key", tmp_path / "other.pub")
    forged = mint_token((tmp_path / "other.key").read_bytes(), "mallory", ["admin"])
    assert gateway.request("GET", "/v1/orders", forged).status == 401


def test_expired_token_is_rejected_with_401(gateway: Gateway, token: Callable[..., str]) -> None:
    assert gateway.request("GET", "/v1/orders", token("alice", "customer", ttl_s=-120)).status == 401


def test_role_not_in_the_rule_gets_403_with_status_json(gateway: Gateway, token: Callable[..., str]) -> None:
    answer = gateway.request("POST", "/v1/orders", token("bob", "advisor"), b"{}")
    assert answer.status == 403
    assert answer.json()["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]


def test_native_grpc_call_is_routed_by_service_path(gateway: Gateway, token: Callable[..., str]) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = order_service_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetOrder(
                order_service_pb2.GetOrderRequest(order_id="missing"),
                metadata=bearer(token("alice", "customer")),
                timeout=5,
            )
    # The service answered (a stub says UNIMPLEMENTED, a built one NOT_FOUND or INVALID_ARGUMENT).
    assert failure.value.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_native_grpc_call_without_token_is_unauthenticated(gateway: Gateway) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = order_service_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetOrder(order_service_pb2.GetOrderRequest(order_id="x"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_web_call_reaches_the_service(gateway: Gateway, token: Callable[..., str]) -> None:
    message = order_service_pb2.GetOrderRequest(order_id="missing").SerializeToString()
    frame = b"\x00" + struct.pack(">I", len(message)) + message
    answer = gateway.request(
        "POST",
        "/switchboard.order.v1.OrderService/GetOrder",
        token("alice", "customer"),
        frame,
        {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/grpc-web")
    trailers = answer.headers.get("grpc-status") or answer.body.decode("latin-1")
    assert "grpc-status" in answer.headers or "grpc-status:" in trailers


def test_cors_preflight_allows_a_browser_origin(gateway: Gateway) -> None:
    answer = gateway.request(
        "OPTIONS",
        "/v1/orders",
        headers={
            "origin": "http://console.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "http://console.example"
    assert "authorization" in answer.headers["access-control-allow-headers"]


def test_healthz_answers_without_token(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/healthz")
    assert answer.status == 200
    assert answer.json() == {"status": "SERVING"}


def test_openapi_document_lists_every_rest_route(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/openapi.json")
    assert answer.status == 200
    paths = answer.json()["paths"]
    assert isinstance(paths, dict)
    for _, binding in BINDINGS:
        assert binding.verb in paths[binding.route]


def test_console_page_is_served_at_root(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert b"<html" in answer.body.lower() or b"<!doctype html" in answer.body.lower()
