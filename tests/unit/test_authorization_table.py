"""The authorisation table (the `(switchboard.auth.v1.access)` option of every RPC):
every RPC has a rule, and a running service denies exactly the roles outside it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import switchboard

from mesh.auth import ROLE_NAMES, ROLES, AccessPolicy
from mesh.client import bearer
from mesh.openapi import RpcMethod, load_descriptor_set, rpc_methods
from mesh.topology import SERVICES, ServiceSpec
from tests.support.processes import ServiceProcess

ALL_SERVICES = sorted({m.service for m in rpc_methods()})
ROLE_DENIAL = "may not call"  # the interceptor's message; ownership denials say otherwise
TRANSIENT = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)


def _import_every_contract() -> None:
    """AccessPolicy reads the default descriptor pool: load every generated module into it."""
    for module in pkgutil.walk_packages(switchboard.__path__, "switchboard."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


def test_every_rpc_of_every_service_has_an_access_rule() -> None:
    _import_every_contract()
    policy = AccessPolicy.from_services(ALL_SERVICES)
    missing = [m.grpc_path for m in rpc_methods() if m.grpc_path not in policy.rules]
    assert missing == []


def test_every_rule_names_a_role_or_is_public() -> None:
    _import_every_contract()
    policy = AccessPolicy.from_services(ALL_SERVICES)
    assert [path for path, rule in policy.rules.items() if not rule.roles and not rule.public] == []


def test_descriptor_set_holds_every_public_service_of_the_topology() -> None:
    names = {f"{f.package}.{s.name}" for f in load_descriptor_set().file for s in f.service}
    assert {svc for spec in SERVICES for svc in spec.grpc_services} <= names


def _call(channel: grpc.Channel, method: RpcMethod, token: str, stream_wait_s: float) -> grpc.RpcError | None:
    """Call `method` with an empty request; the error, or None if it was accepted."""
    metadata = bearer(token)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(method.grpc_path, None, None)(
                b"", metadata=metadata, timeout=stream_wait_s
            )
            next(iter(stream), None)
        else:
            channel.unary_unary(method.grpc_path, None, None)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error
    return None


def _outcome(channel: grpc.Channel, method: RpcMethod, role: str, token: str) -> bool:
    """Whether the service denied `role` for `method` by the table."""
    error = _call(channel, method, token, stream_wait_s=2)
    expected_denial = role not in {ROLE_NAMES[r] for r in method.roles}
    if expected_denial and isinstance(error, grpc.Call) and error.code() in TRANSIENT:
        # A busy machine, not an answer: ask once more, patiently (a denial is immediate).
        error = _call(channel, method, token, stream_wait_s=10)
    return _denied_for_role(error)


def _denied_for_role(error: grpc.RpcError | None) -> bool:
    return (
        isinstance(error, grpc.Call)
        and error.code() == grpc.StatusCode.PERMISSION_DENIED
        and ROLE_DENIAL in (error.details() or "")
    )


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_running_service_denies_exactly_the_roles_outside_each_rule(
    spec: ServiceSpec, start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    process = start_service(spec.module)
    methods = [m for m in rpc_methods() if m.service in spec.grpc_services]
    cases = [(m, role) for m in methods for role in sorted(ROLES)]
    with grpc.insecure_channel(process.target) as channel, ThreadPoolExecutor(16) as pool:
        denials = list(pool.map(lambda c: _outcome(channel, c[0], c[1], token("u-1", c[1])), cases))
    wrong = [
        f"{method.grpc_path} as {role}: {'denied' if denied else 'allowed'}"
        for (method, role), denied in zip(cases, denials, strict=True)
        if denied == (role in {ROLE_NAMES[r] for r in method.roles})
    ]
    assert wrong == []
