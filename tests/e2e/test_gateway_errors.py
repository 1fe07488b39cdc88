"""Every error a REST client can get from the gateway is google.rpc.Status JSON with
the right HTTP status and code: token failures, bad bodies, unknown paths and verbs,
oversized bodies, paths and headers, upstream timeouts; the services' own Status
(with its field violations) passes untouched; gRPC and gRPC-Web callers keep
grpc-status. Real Envoy, real order_svc, and a slow probe service as activity."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from switchboard.order.v1 import order_service_pb2, order_service_pb2_grpc

from mesh.auth import ensure_keys, mint_token
from mesh.client import bearer
from mesh.gateway import GatewaySettings
from tests.e2e.gateway_harness import Gateway, Response, start_gateway, start_services
from tests.support.processes import EmbeddedMongo, ServiceProcess, unique

UNARY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def gateway(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway-errors")
    services = start_services(["order"], mongo, keys, tmp / "logs")
    tag = unique("gwerr")
    slow = ServiceProcess(
        "tests.support.slow_svc",
        {
            "MONGO_URL": mongo.url,
            "MONGO_DB": tag,
            "EVENTS_EXCHANGE": f"{tag}.events",
            "QUEUE_PREFIX": f"{tag}.",
            "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
            "METRICS_PORT": "0",
            "SLOW_SECONDS": "5",
            "DEFAULT_DEADLINE_S": "30",
        },
        tmp / "logs",
    ).start()
    services["activity"] = slow
    settings = GatewaySettings(
        rate_limit_rps=1000,
        rate_limit_burst=1000,
        unary_timeout_s=UNARY_TIMEOUT_S,
        max_request_body_bytes=64 * 1024,
    )
    gateway = start_gateway(tmp, keys, services, settings)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def foreign_key(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("foreign")
    ensure_keys(directory / "jwt.key", directory / "jwt.pub")
    return (directory / "jwt.key").read_bytes()


def _status(answer: Response, http: int, code: int) -> dict[str, object]:
    """The answer is `http` with a google.rpc.Status JSON body of `code`."""
    assert answer.status == http, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json", answer.headers
    status = answer.json()
    assert status["code"] == code, status
    assert isinstance(status["message"], str) and status["message"], status
    assert isinstance(status.get("details"), list), status
    return status


def _token_cases(keys: Path, foreign_key: bytes) -> dict[str, str | None]:
    own = (keys / "jwt.key").read_bytes()
    good = mint_token(own, "alice", ["customer"])
    return {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": mint_token(own, "alice", ["customer"], ttl_s=-120),
        "bad signature": mint_token(foreign_key, "alice", ["customer"]),
        "tampered": good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
        "wrong issuer": mint_token(own, "alice", ["customer"], issuer="someone-else"),
        "another audience": mint_token(own, "alice", ["customer"], audience="another-api"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "malformed", "expired", "bad signature", "tampered", "wrong issuer", "another audience"],
)
def test_every_token_failure_is_401_status_json(
    gateway: Gateway, keys: Path, foreign_key: bytes, case: str
) -> None:
    token = _token_cases(keys, foreign_key)[case]
    _status(gateway.request("GET", "/v1/orders", token), 401, 16)


def test_token_for_another_audience_is_unauthenticated_over_grpc(gateway: Gateway, keys: Path) -> None:
    token = mint_token((keys / "jwt.key").read_bytes(), "alice", ["customer"], audience="another-api")
    with grpc.insecure_channel(gateway.address) as channel:
        stub = order_service_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetOrder(order_service_pb2.GetOrderRequest(order_id="x"), metadata=bearer(token), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_web_call_without_token_gets_grpc_status_not_json(gateway: Gateway) -> None:
    message = order_service_pb2.GetOrderRequest(order_id="x").SerializeToString()
    answer = gateway.request(
        "POST",
        "/switchboard.order.v1.OrderService/GetOrder",
        body=b"\x00" + struct.pack(">I", len(message)) + message,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    assert answer.headers["grpc-status"] == str(grpc.StatusCode.UNAUTHENTICATED.value[0])
    assert answer.headers["content-type"].startswith("application/grpc-web")


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/orders/o-1/nope", "/nothing.html", "/switchboard"])
def test_unknown_path_is_404_status_json(gateway: Gateway, token: Callable[..., str], path: str) -> None:
    status = _status(gateway.request("GET", path, token("alice", "customer")), 404, 5)
    assert path in str(status["message"])


@pytest.mark.parametrize(
    ("verb", "path"), [("DELETE", "/v1/orders"), ("PUT", "/v1/orders/o-1"), ("GET", "/v1/orders/o-1:cancel")]
)
def test_known_path_with_another_verb_is_405_status_json(
    gateway: Gateway, token: Callable[..., str], verb: str, path: str
) -> None:
    answer = gateway.request(verb, path, token("alice", "customer"), b"{}" if verb != "GET" else None)
    _status(answer, 405, 12)
    assert answer.headers["allow"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"idempotencyKey": 7, "lines": []}', "idempotency_key"),
        (b'{"idempotencyKey": "k", "lines": [{"sku": "a", "quantity": "many"}]}', "lines[0].quantity"),
        (b'{"idempotencyKey": "k", "lines": {"sku": "a"}}', "lines"),
    ],
)
def test_wrong_typed_body_value_is_400_status_json_naming_the_field(
    gateway: Gateway, token: Callable[..., str], body: bytes, field: str
) -> None:
    status = _status(gateway.request("POST", "/v1/orders", token("alice", "customer"), body), 400, 3)
    assert field in str(status["message"]), status


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=ORDER_STATUS_NOPE", "status"),
        ("status=order_status_placed", "status"),
        ("pageSize=7x", "page_size"),
    ],
)
def test_unknown_miscased_or_wrong_typed_query_value_is_400_status_json(
    gateway: Gateway, token: Callable[..., str], query: str, field: str
) -> None:
    status = _status(gateway.request("GET", f"/v1/orders?{query}", token("alice", "customer")), 400, 3)
    assert field in str(status["message"]), status


def test_malformed_json_body_is_400_status_json(gateway: Gateway, token: Callable[..., str]) -> None:
    _status(gateway.request("POST", "/v1/orders", token("alice", "customer"), b'{"lines": [}'), 400, 3)


def test_service_status_keeps_its_field_violations(gateway: Gateway, token: Callable[..., str]) -> None:
    status = _status(gateway.request("POST", "/v1/orders", token("alice", "customer"), b"{}"), 400, 3)
    details = status["details"]
    assert isinstance(details, list) and details
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert details[0]["fieldViolations"]


def test_body_over_the_limit_is_413_status_json(gateway: Gateway, token: Callable[..., str]) -> None:
    body = b'{"idempotencyKey": "' + b"k" * (128 * 1024) + b'"}'
    _status(gateway.request("POST", "/v1/orders", token("alice", "customer"), body), 413, 3)


def test_oversized_path_is_414_status_json(gateway: Gateway, token: Callable[..., str]) -> None:
    path = "/v1/orders/" + "o" * (GatewaySettings().max_path_bytes + 1)
    _status(gateway.request("GET", path, token("alice", "customer")), 414, 3)


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024])
def test_oversized_headers_are_431_status_json(
    gateway: Gateway, token: Callable[..., str], size: int
) -> None:
    answer = gateway.request(
        "GET", "/v1/orders", token("alice", "customer"), headers={"x-padding": "p" * size}
    )
    _status(answer, 431, 3)


def test_upstream_timeout_is_504_status_json(gateway: Gateway, token: Callable[..., str]) -> None:
    answer = gateway.request("GET", "/v1/stats/daily/2026-01-02", token("admin", "admin"), timeout_s=10)
    _status(answer, 504, 4)


def test_healthz_answers_a_small_json_body(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/healthz")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"status": "SERVING"}


def test_static_files_are_not_wrapped_as_status(gateway: Gateway) -> None:
    answer = gateway.request("GET", "/openapi.json")
    assert answer.status == 200
    assert "paths" in answer.json()


def test_a_body_on_a_route_without_one_is_refused_not_ignored(
    gateway: Gateway, token: Callable[..., str]
) -> None:
    answer = gateway.request("GET", "/v1/orders", token("alice", "customer"), b'{"customerId": "bob"}')
    status = _status(answer, 400, 3)
    assert "no request body" in str(status["message"])
