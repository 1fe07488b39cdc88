"""The local mesh certificate authority (for `mesh up` and tests; Kubernetes uses
cert-manager): one CA key pair kept under a directory, and short-lived workload
certificates, each naming its workload by a SPIFFE-style URI SAN
(`spiffe://switchboard.local/svc/order`) plus the DNS names and addresses it serves.

Layout of the directory: `ca.pem`, `ca.key` (0600), and per workload
`<name>.pem` (the leaf certificate), `<name>.key` (0600). Files are replaced
atomically (write then rename), so a reader never sees half a certificate: the
services' reloading credentials (mesh.tls) pick the new pair up on their next
handshake."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesh.tls import TRUST_DOMAIN, spiffe_id

CA_TTL = datetime.timedelta(days=365)
WORKLOAD_TTL = datetime.timedelta(hours=24)
# A certificate with less than this share of its lifetime left is re-issued.
RENEW_FRACTION = 1 / 3
_CLOCK_SKEW = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """Where one workload's certificate and key were written."""

    name: str
    cert_file: Path
    key_file: Path
    ca_file: Path
    not_after: datetime.datetime


class MeshCA:
    """The CA under `directory`: created on first use, reused afterwards."""

    def __init__(self, directory: Path, common_name: str = f"{TRUST_DOMAIN} mesh CA") -> None:
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self._key_file = directory / "ca.key"
        if not (self.ca_file.exists() and self._key_file.exists()):
            self._create(common_name)
        self._key = serialization.load_pem_private_key(self._key_file.read_bytes(), password=None)
        self._cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())

    def _create(self, common_name: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + CA_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_atomically(self._key_file, _key_pem(key), 0o600)
        _write_atomically(self.ca_file, cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        uri: str,
        dns_names: tuple[str, ...] = (),
        *,
        ttl: datetime.timedelta = WORKLOAD_TTL,
        not_before: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """Write `<name>.pem` / `<name>.key`: a leaf for both server and client use whose
        identity is the URI SAN `uri`. `not_before` back-dates it (tests of expiry)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - _CLOCK_SKEW
        alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        for dns in dns_names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(dns)))
            except ValueError:
                alt_names.append(x509.DNSName(dns))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + ttl)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self._key, hashes.SHA256())  # type: ignore[arg-type]
        )
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        # Key first: a reader that sees the new certificate must find its key.
        _write_atomically(key_file, _key_pem(key), 0o600)
        _write_atomically(cert_file, cert.public_bytes(serialization.Encoding.PEM))
        return IssuedCertificate(name, cert_file, key_file, self.ca_file, start + ttl)

    def issue_workload(
        self, service: str, dns_names: tuple[str, ...] = ("localhost", "127.0.0.1"), **kwargs: object
    ) -> IssuedCertificate:
        """The certificate of a service of the mesh (`svc/<service>`)."""
        return self.issue(service, spiffe_id("svc", service), (service, *dns_names), **kwargs)  # type: ignore[arg-type]

    def issue_user(self, user: str, **kwargs: object) -> IssuedCertificate:
        """An operator's client certificate (`user/<user>`), e.g. for grpcurl -cert/-key."""
        return self.issue(f"user-{user}", spiffe_id("user", user), **kwargs)  # type: ignore[arg-type]


def needs_renewal(cert_file: Path, now: datetime.datetime | None = None) -> bool:
    """True when the certificate is missing or has less than RENEW_FRACTION of its life left."""
    if not cert_file.exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return (end - (now or _now())) < (end - start) * RENEW_FRACTION
