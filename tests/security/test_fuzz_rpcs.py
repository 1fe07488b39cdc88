"""Fuzzing every RPC of the mesh from its descriptor, over native gRPC (straight at
the service) and over REST (through the gateway): whatever arrives, the answer is
never UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED (REST: never a 5xx), no process
crashes, and oversized messages are refused with
RESOURCE_EXHAUSTED or INVALID_ARGUMENT."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc as ogrpc
from switchboard.type.v1 import money_pb2

from mesh.auth import ROLE_NAMES
from mesh.client import bearer
from mesh.openapi import RpcMethod, rest_methods, rpc_methods
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway
from tests.security.fuzz import import_contracts, json_bodies, message_class, messages, text

import_contracts()
POOL = descriptor_pool.Default()
NEVER = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
# Bounded: the whole suite stays well under two minutes on two cores.
UNARY_EXAMPLES = 30
STREAM_EXAMPLES = 8
REST_EXAMPLES = 10


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _host(whole_mesh: Gateway, method: RpcMethod) -> str:
    """The service process that serves `method` (the event admin RPCs: registration_svc)."""
    for spec in SERVICES:
        if method.service in spec.grpc_services:
            return whole_mesh.services[spec.name].target
    return whole_mesh.services["registration"].target


def _role(method: RpcMethod) -> str:
    """The most privileged role the table allows, so that the request reaches the handler."""
    names = [ROLE_NAMES[r] for r in method.roles]
    return "admin" if "admin" in names else names[0]


def _call(
    channel: grpc.Channel, method: RpcMethod, request: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    try:
        if method.server_streaming:
            call = channel.unary_stream(method.grpc_path, None, None)(request, metadata=metadata, timeout=1.0)
            try:
                next(iter(call), None)
            finally:
                call.cancel()
        else:
            channel.unary_unary(method.grpc_path, None, None)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        if not isinstance(error, grpc.Call):
            return grpc.StatusCode.UNKNOWN
        if error.code() == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK  # we cancelled a live stream after its first message
        return error.code()
    return grpc.StatusCode.OK


def _assert_alive(whole_mesh: Gateway) -> None:
    dead = [name for name, process in whole_mesh.services.items() if process.exited()]
    assert dead == [], f"crashed: {dead}"


@pytest.mark.parametrize("method", rpc_methods(), ids=lambda m: m.grpc_path.removeprefix("/switchboard."))
def test_fuzzed_grpc_requests_never_get_internal_or_unknown(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    metadata = bearer(token("fuzzer", _role(method)))
    descriptor = POOL.FindMessageTypeByName(method.input_type)
    seen: dict[str, int] = {}
    with grpc.insecure_channel(_host(whole_mesh, method)) as channel:

        @fuzz_settings(STREAM_EXAMPLES if method.server_streaming else UNARY_EXAMPLES)
        @given(messages(descriptor))
        def check(request: Message) -> None:
            code = _call(channel, method, request.SerializeToString(), metadata)
            seen[code.name] = seen.get(code.name, 0) + 1
            assert code not in NEVER, f"{method.grpc_path} answered {code.name} to {request}"

        check()
    _assert_alive(whole_mesh)
    # Some requests got through validation: the fuzzer exercised more than the validator.
    assert seen, seen


@pytest.mark.parametrize("method", rpc_methods(), ids=lambda m: m.grpc_path.removeprefix("/switchboard."))
def test_oversized_requests_are_refused(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    """A 5 MiB message exceeds the transport limit; a 300 KiB string in any one string
    field exceeds every field's bound. Both through the gateway and straight."""
    metadata = bearer(token("fuzzer", _role(method)))
    cls = message_class(method.input_type)
    strings = [
        f for f in cls.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]
    wrong = []
    targets = [_host(whole_mesh, method)]
    if any(method.service in spec.grpc_services for spec in SERVICES):
        targets.append(whole_mesh.address)
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            huge = b"\x0a" + _varint(5 << 20) + b"x" * (5 << 20)  # field 1, length-delimited
            code = _call(channel, method, huge, metadata)
            if code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
                wrong.append(f"{target} 5 MiB: {code.name}")
            for field in strings:
                request = cls(**{field.name: "x" * 300_000})
                code = _call(channel, method, request.SerializeToString(), metadata)
                if code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
                    wrong.append(f"{target} {field.name}=300 KiB: {code.name}")
    _assert_alive(whole_mesh)
    assert wrong == [], "\n".join(wrong)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@pytest.mark.parametrize("method", rest_methods(), ids=lambda m: f"{m.http_verb} {m.http_path}")
def test_fuzzed_rest_requests_never_get_a_server_error(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    bearer_token = token("fuzzer", _role(method))
    descriptor = POOL.FindMessageTypeByName(method.input_type)

    @fuzz_settings(3 if method.server_streaming else REST_EXAMPLES)
    @given(
        st.lists(text(), min_size=len(method.path_params), max_size=len(method.path_params)),
        json_bodies(descriptor),
        st.booleans(),
    )
    def check(path_values: list[str], body: dict[str, object], raw: bool) -> None:
        path = method.http_path
        for name, value in zip(method.path_params, path_values, strict=True):
            path = path.replace("{" + name + "}", urllib.parse.quote(value or "x", safe=""))
        data = None
        if method.http_body:
            data = json.dumps(body).encode() if not raw else json.dumps(body).encode()[:-1]  # truncated JSON
        elif body:
            path += "?" + urllib.parse.urlencode({k: str(v) for k, v in body.items()})
        answer = whole_mesh.request(
            method.http_verb.upper(), path, bearer_token, data, timeout_s=1 if method.server_streaming else 10
        )
        assert answer.status < 500, (
            f"{method.http_verb} {path} {data!r}: {answer.status} {answer.body[:300]!r}"
        )

    check()
    _assert_alive(whole_mesh)


def test_fuzzed_orders_that_were_accepted_all_satisfy_the_contract(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """No write slips past validation: every order a fuzzing customer got accepted
    has 1 to 100 lines, valid SKUs and quantities, one currency and a correct total."""
    user = f"fuzz-{uuid.uuid4().hex[:8]}"
    metadata = bearer(token(user, "customer"))
    sku = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
    with grpc.insecure_channel(whole_mesh.services["order"].target) as channel:
        stub = ogrpc.OrderServiceStub(channel)
        lines = st.builds(
            opb.LineItem,
            sku=st.sampled_from(["a", "sku-1", "", "x" * 65, "bad sku", "ü"]),
            quantity=st.sampled_from([-1, 0, 1, 7, 1_000_000, 1_000_001, 2**63 - 1]),
            unit_price=st.builds(
                money_pb2.Money,
                currency_code=st.sampled_from(["EUR", "USD", "eur", "", "EURO"]),
                amount_minor=st.sampled_from([-1, 0, 1, 10**12, 10**12 + 1, 2**63 - 1]),
            ),
        )

        @fuzz_settings(UNARY_EXAMPLES)
        @given(st.lists(lines, max_size=4), st.sampled_from(["k", "", "ü", "x" * 129]) | text())
        def place(order_lines: list[opb.LineItem], key: str) -> None:
            request = opb.PlaceOrderRequest(lines=order_lines, idempotency_key=key or "k")
            code = _call(channel, _PLACE, request.SerializeToString(), metadata)
            assert code not in NEVER

        place()
        stored = stub.ListOrders(opb.ListOrdersRequest(page_size=1000), metadata=metadata, timeout=10).orders
    for order in stored:
        assert 1 <= len(order.lines) <= 100, order
        currencies = {line.unit_price.currency_code for line in order.lines}
        assert currencies == {order.currency_code} and re.fullmatch(r"[A-Z]{3}", order.currency_code), order
        for line in order.lines:
            assert sku.match(line.sku) and 1 <= line.quantity <= 1_000_000, order
            assert 0 <= line.unit_price.amount_minor <= 10**12, order
        assert order.total.amount_minor == sum(li.quantity * li.unit_price.amount_minor for li in order.lines)


_PLACE = next(m for m in rpc_methods() if m.grpc_path == "/switchboard.order.v1.OrderService/PlaceOrder")
