"""mTLS on a service's gRPC port (MESH_TLS): only a client certificate issued by the
mesh CA and still valid gets through; the certificate rotates without a restart and
without dropping open connections; probes keep a plaintext health-only port."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc as agrpc
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.order.v1 import order_service_pb2_grpc as ogrpc

from mesh.client import bearer, health_status
from mesh.pki import IssuedCertificate, MeshCA
from mesh.processes import free_port, wait_until
from mesh.tls import TlsFiles, channel_credentials, spiffe_id
from tests.support.processes import ServiceProcess

SERVING = health_pb2.HealthCheckResponse.SERVING


def _files(issued: IssuedCertificate) -> TlsFiles:
    return TlsFiles(issued.cert_file, issued.key_file, issued.ca_file)


def _channel(target: str, issued: IssuedCertificate | None, name_override: str = "") -> grpc.Channel:
    if issued is None:
        return grpc.insecure_channel(target)
    options = [("grpc.ssl_target_name_override", name_override)] if name_override else []
    return grpc.secure_channel(target, channel_credentials(_files(issued)), options=options)


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.RpcError as error:
        return error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


@dataclass
class TlsService(ServiceProcess):
    """A service process whose readiness is read over mTLS with `client`'s certificate."""

    client: IssuedCertificate | None = None

    def serving(self) -> bool:
        with _channel(self.target, self.client) as channel:
            return _health(channel) == grpc.StatusCode.OK


@pytest.fixture
def ca(tmp_path: Path) -> MeshCA:
    return MeshCA(tmp_path / "pki")


@pytest.fixture
def order_tls(
    ca: MeshCA, service_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[TlsService, IssuedCertificate]]:
    ca.issue_workload("order")
    client = ca.issue_workload("scheduler")
    health_port = free_port()
    env = {
        **service_env,
        "SERVICE_NAME": "order",
        "MESH_TLS": "true",
        "TLS_DIR": str(ca.directory),
        "HEALTH_PORT": str(health_port),
    }
    process = TlsService("order_svc", env, tmp_path / "logs", client=client)
    process.start()
    yield process, client
    process.stop()


def test_plaintext_client_is_refused_on_the_service_port(
    order_tls: tuple[TlsService, IssuedCertificate],
) -> None:
    service, _ = order_tls
    with _channel(service.target, None) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_client_certificate_from_another_ca_is_refused(
    order_tls: tuple[TlsService, IssuedCertificate], tmp_path: Path
) -> None:
    service, _ = order_tls
    foreign = MeshCA(tmp_path / "other-ca").issue_workload("scheduler")
    # Trust our CA for the server's certificate, but present the foreign client certificate.
    ours = order_tls[1]
    credentials = grpc.ssl_channel_credentials(
        ours.ca_file.read_bytes(), foreign.key_file.read_bytes(), foreign.cert_file.read_bytes()
    )
    with grpc.secure_channel(service.target, credentials) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_expired_client_certificate_is_refused(
    order_tls: tuple[TlsService, IssuedCertificate], ca: MeshCA
) -> None:
    service, _ = order_tls
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    expired = ca.issue("expired", spiffe_id("svc", "scheduler"), not_before=long_ago)
    with _channel(service.target, expired) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_client_without_a_certificate_is_refused(order_tls: tuple[TlsService, IssuedCertificate]) -> None:
    service, client = order_tls
    credentials = grpc.ssl_channel_credentials(client.ca_file.read_bytes())
    with grpc.secure_channel(service.target, credentials) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_mesh_certificate_client_is_served_with_a_token_and_refused_without_one(
    order_tls: tuple[TlsService, IssuedCertificate], token: Callable[..., str]
) -> None:
    service, client = order_tls
    with _channel(service.target, client) as channel:
        stub = ogrpc.OrderServiceStub(channel)
        assert stub.ListOrders(
            opb.ListOrdersRequest(), metadata=bearer(token("alice", "customer")), timeout=5
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListOrders(opb.ListOrdersRequest(), timeout=5)
    # scheduler is not among the workloads ListOrders' rule lets in without a token.
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_server_certificate_is_checked_against_the_name_the_client_expects(
    order_tls: tuple[TlsService, IssuedCertificate],
) -> None:
    service, client = order_tls
    with _channel(service.target, client, name_override="order") as channel:
        assert _health(channel) == grpc.StatusCode.OK
    with _channel(service.target, client, name_override="activity") as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_health_port_answers_probes_in_plaintext_and_serves_nothing_else(
    order_tls: tuple[TlsService, IssuedCertificate], token: Callable[..., str]
) -> None:
    service, _ = order_tls
    probe_target = f"127.0.0.1:{service.env['HEALTH_PORT']}"
    assert health_status(probe_target) == "SERVING"
    with grpc.insecure_channel(probe_target) as channel, pytest.raises(grpc.RpcError) as refused:
        ogrpc.OrderServiceStub(channel).ListOrders(
            opb.ListOrdersRequest(), metadata=bearer(token("alice", "customer")), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _served_certificate(target: str, client: IssuedCertificate) -> x509.Certificate:
    """The certificate the server presents to a new connection."""
    context = ssl.create_default_context(cafile=str(client.ca_file))
    context.load_cert_chain(client.cert_file, client.key_file)
    context.set_alpn_protocols(["h2"])
    host, port = target.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_certificate_rotates_without_restart_or_dropping_open_connections(
    order_tls: tuple[TlsService, IssuedCertificate], ca: MeshCA, token: Callable[..., str]
) -> None:
    service, client = order_tls
    assert service.process is not None
    pid = service.process.pid
    before = _served_certificate(service.target, client)
    metadata = bearer(token("alice", "customer"))
    with _channel(service.target, client) as channel:
        stub = ogrpc.OrderServiceStub(channel)
        stub.ListOrders(opb.ListOrdersRequest(), metadata=metadata, timeout=5)
        rotated = ca.issue_workload("order")
        wait_until(
            lambda: _served_certificate(service.target, client).serial_number != before.serial_number, 10
        )
        after = _served_certificate(service.target, client)
        # The connection opened before the rotation still serves calls.
        stub.ListOrders(opb.ListOrdersRequest(), metadata=metadata, timeout=5)
    assert after.serial_number == x509.load_pem_x509_certificate(rotated.cert_file.read_bytes()).serial_number
    assert service.process.pid == pid and service.process.poll() is None


@pytest.fixture
def activity_tls(ca: MeshCA, service_env: dict[str, str], tmp_path: Path) -> Iterator[TlsService]:
    ca.issue_workload("activity")
    env = {**service_env, "SERVICE_NAME": "activity", "MESH_TLS": "true", "TLS_DIR": str(ca.directory)}
    process = TlsService("activity_svc", env, tmp_path / "logs", client=ca.issue_workload("scheduler"))
    process.start()
    yield process
    process.stop()


def _daily_stats(target: str, client: IssuedCertificate, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    with _channel(target, client) as channel:
        try:
            agrpc.ActivityServiceStub(channel).GetDailyStats(
                apb.GetDailyStatsRequest(date="2026-01-01", time_zone="UTC"), metadata=metadata, timeout=5
            )
        except grpc.RpcError as error:
            return error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
    return "OK"


def test_workload_listed_in_the_rpc_rule_calls_it_by_certificate_alone(
    activity_tls: TlsService, ca: MeshCA
) -> None:
    assert _daily_stats(activity_tls.target, ca.issue_workload("scheduler")) == "OK"


def test_workload_not_listed_in_the_rpc_rule_is_permission_denied(
    activity_tls: TlsService, ca: MeshCA
) -> None:
    assert _daily_stats(activity_tls.target, ca.issue_workload("order")) == "PERMISSION_DENIED"


def test_user_certificate_without_token_is_unauthenticated_and_the_token_decides(
    activity_tls: TlsService, ca: MeshCA, token: Callable[..., str]
) -> None:
    operator = ca.issue_user("alice")
    assert _daily_stats(activity_tls.target, operator) == "UNAUTHENTICATED"
    assert (
        _daily_stats(activity_tls.target, operator, bearer(token("alice", "customer"))) == "PERMISSION_DENIED"
    )
    assert _daily_stats(activity_tls.target, operator, bearer(token("alice", "operator"))) == "OK"
