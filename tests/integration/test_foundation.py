"""Every service process serves health and reflection; health follows MongoDB;
SIGTERM drains in-flight calls. Real processes, real grpcurl."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from switchboard.activity.v1 import activity_service_pb2, activity_service_pb2_grpc

from mesh.client import bearer
from mesh.processes import wait_until
from mesh.topology import SERVICES, ServiceSpec
from tests.support.processes import EmbeddedMongo, ServiceProcess

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def reflected_services(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
        return {s.name for r in responses for s in r.list_services_response.service}


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_service_is_serving_and_lists_its_services_by_reflection(
    spec: ServiceSpec, start_service: Callable[..., ServiceProcess]
) -> None:
    process = start_service(spec.module)
    assert process.health() == "SERVING"
    for name in spec.grpc_services:
        assert process.health(name) == "SERVING"
    services = reflected_services(process.target)
    assert set(spec.grpc_services) <= services
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_grpcurl_lists_services_and_checks_health(
    spec: ServiceSpec, start_service: Callable[..., ServiceProcess]
) -> None:
    process = start_service(spec.module)
    listed = subprocess.run(
        [GRPCURL, "-plaintext", process.target, "list"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout.split()
    assert set(spec.grpc_services) <= set(listed)
    health = subprocess.run(
        [GRPCURL, "-plaintext", process.target, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert '"status": "SERVING"' in health


def test_health_goes_not_serving_without_mongodb_and_back(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    own_mongo = EmbeddedMongo(tmp_path / "mongo").start()
    process = ServiceProcess(
        "order_svc", {**service_env, "MONGO_URL": own_mongo.url, "MONGO_TIMEOUT_MS": "500"}, tmp_path
    )
    restarted = EmbeddedMongo(own_mongo.data_dir, port=own_mongo.port)
    try:
        process.start()
        own_mongo.stop()
        assert wait_until(lambda: process.health() == "NOT_SERVING", 15)
        assert process.health("switchboard.order.v1.OrderService") == "NOT_SERVING"
        assert process.health("liveness") == "SERVING"  # out of rotation, not restarted
        restarted.start()
        assert wait_until(lambda: process.health() == "SERVING", 15)
    finally:
        process.stop()
        own_mongo.stop()
        restarted.stop()


def test_sigterm_drains_an_in_flight_call_before_exit(
    service_env: dict[str, str], tmp_path: Path, token: Callable[..., str]
) -> None:
    process = ServiceProcess(
        "tests.support.slow_svc", {**service_env, "SLOW_SECONDS": "2", "SHUTDOWN_GRACE_S": "10"}, tmp_path
    ).start()
    outcome: dict[str, object] = {}

    def call() -> None:
        with grpc.insecure_channel(process.target) as channel:
            stub = activity_service_pb2_grpc.ActivityServiceStub(channel)
            try:
                stub.GetDailyStats(
                    activity_service_pb2.GetDailyStatsRequest(date="2026-01-01"),
                    metadata=bearer(token("ops", "admin")),
                    timeout=20,
                )
                outcome["code"] = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                outcome["code"] = exc.code()  # type: ignore[attr-defined]

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)  # the call is in flight (it takes 2 s)
    exit_code = process.terminate()
    caller.join(timeout=20)
    assert outcome["code"] == grpc.StatusCode.OK
    assert exit_code == 0
