"""Mutual TLS between workloads: server credentials that require a client
certificate from the mesh CA and reload the certificate files when they change
(rotation without a restart), client credentials from the same files, and the
caller's workload identity (its SPIFFE id) read from the connection.

A workload's identity is the URI SAN of its certificate:
`spiffe://switchboard.local/svc/<service>` for services, `.../user/<name>` for
operators' client certificates (mesh.pki issues both locally; cert-manager in
Kubernetes)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

TRUST_DOMAIN = "switchboard.local"
PEER_SPIFFE_ID = "peer_spiffe_id"  # the auth-context property gRPC core fills from a SPIFFE URI SAN


def spiffe_id(kind: str, name: str) -> str:
    """`spiffe_id("svc", "order")` → `spiffe://switchboard.local/svc/order`."""
    return f"spiffe://{TRUST_DOMAIN}/{kind}/{name}"


@dataclass(frozen=True)
class TlsFiles:
    """A workload's PEM files: its certificate (chain), its key, and the CA it trusts."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(certificate chain, private key, CA bundle)."""
        return self.cert_file.read_bytes(), self.key_file.read_bytes(), self.ca_file.read_bytes()

    def version(self) -> tuple[tuple[int, int], ...]:
        """Changes whenever any of the files is replaced (mtime and size of each)."""
        stats = (os.stat(path) for path in (self.cert_file, self.key_file, self.ca_file))
        return tuple((stat.st_mtime_ns, stat.st_size) for stat in stats)


class ReloadingServerCredentials:
    """`grpc.dynamic_ssl_server_credentials` over `files`: gRPC asks the fetcher at
    each new handshake, and it returns a new configuration only when a file changed,
    so a rotated certificate serves new connections while open ones carry on."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._version = files.version()
        self.reloads = 0
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self._fetch,  # type: ignore[arg-type]  # grpc documents None as "unchanged"; the stub does not
            require_client_authentication=True,
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        chain, key, ca = self._files.read()
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Runs on a gRPC core thread: it must never raise (a half-written rotation keeps
        # the previous configuration until the next handshake).
        try:
            with self._lock:
                version = self._files.version()
                if version == self._version:
                    return None
                configuration = self._configuration()
                self._version = version
                self.reloads += 1
        except Exception:
            log.exception("could not reload the TLS certificate; keeping the previous one")
            return None
        log.info("TLS certificate reloaded", extra={"cert_file": str(self._files.cert_file)})
        return configuration


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Client credentials: present the workload's certificate, trust only the mesh CA."""
    chain, key, ca = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)


def peer_spiffe_id(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> str:
    """The caller's workload identity, or "" on a plaintext connection / a certificate
    without a SPIFFE URI SAN."""
    values = context.auth_context().get(PEER_SPIFFE_ID) or ()
    first = next(iter(values), b"")
    return first.decode() if isinstance(first, bytes) else ""
