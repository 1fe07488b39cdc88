"""The interceptor chain on a real server process: errors never escape as UNKNOWN,
validation errors carry field violations, deadlines and auth are enforced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from switchboard.activity.v1 import activity_service_pb2 as pb
from switchboard.activity.v1 import activity_service_pb2_grpc

from mesh.client import bearer
from tests.support.processes import ServiceProcess


@pytest.fixture
def probe(service_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        "tests.support.slow_svc", {**service_env, "SLOW_SECONDS": "2", "DEFAULT_DEADLINE_S": "1"}, tmp_path
    ).start()
    yield process
    process.stop()


@pytest.fixture
def stub(probe: ServiceProcess) -> Iterator[activity_service_pb2_grpc.ActivityServiceStub]:
    with grpc.insecure_channel(probe.target) as channel:
        yield activity_service_pb2_grpc.ActivityServiceStub(channel)


def test_unexpected_exception_becomes_internal_not_unknown(
    stub: activity_service_pb2_grpc.ActivityServiceStub, token: Callable[..., str]
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDailyStats(pb.ListDailyStatsRequest(), metadata=bearer(token("ops", "admin")), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "request id" in raised.value.details()
    assert "a bug" not in raised.value.details()


def test_validation_error_mid_stream_carries_field_violations(
    stub: activity_service_pb2_grpc.ActivityServiceStub, token: Callable[..., str]
) -> None:
    stream = stub.WatchStats(pb.WatchStatsRequest(), metadata=bearer(token("ops", "admin")), timeout=5)
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        for update in stream:
            received.append(update)
    assert len(received) == 1
    status = rpc_status.from_call(raised.value)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["date"]


def test_server_enforces_its_default_deadline_when_the_client_sets_none(
    stub: activity_service_pb2_grpc.ActivityServiceStub, token: Callable[..., str]
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetDailyStats(pb.GetDailyStatsRequest(), metadata=bearer(token("ops", "admin")))
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_missing_token_is_unauthenticated(stub: activity_service_pb2_grpc.ActivityServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDailyStats(pb.ListDailyStatsRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_role_outside_the_rule_is_permission_denied(
    stub: activity_service_pb2_grpc.ActivityServiceStub, token: Callable[..., str]
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDailyStats(
            pb.ListDailyStatsRequest(), metadata=bearer(token("alice", "customer")), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_health_is_open_without_a_token(probe: ServiceProcess) -> None:
    assert probe.health() == "SERVING"
