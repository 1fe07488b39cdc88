"""JWT (RS256) authentication and the authorisation table.

Every RPC declares its rule in the contract (`option (switchboard.auth.v1.access)`);
`AccessPolicy` reads those rules from the descriptor pool, so the table exists once
and the gateway, the services and the tests all read the same one. Default deny."""

from __future__ import annotations

import contextvars
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import descriptor_pool
from switchboard.auth.v1 import access_pb2

from mesh.errors import PermissionDenied, Unauthenticated
from mesh.tls import spiffe_id

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
ROLE_NAMES: dict[int, str] = {
    access_pb2.ROLE_CUSTOMER: "customer",
    access_pb2.ROLE_ADVISOR: "advisor",
    access_pb2.ROLE_ADMIN: "admin",
    access_pb2.ROLE_OPERATOR: "operator",
    access_pb2.ROLE_SERVICE: "service",
}
ROLES = frozenset(ROLE_NAMES.values())
PRIVILEGED_ROLES = frozenset({"admin", "operator", "service"})
# A user id (a token's subject): what the services store as owner and member ids, so
# bounded like their other ids, and printable without quoting in logs and URLs.
USER_ID_MAX = 128
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+:-]*")


def user_id_problem(user_id: str) -> str | None:
    """Why `user_id` is no valid subject, or None when it is one."""
    if not user_id:
        return "must not be empty"
    if len(user_id) > USER_ID_MAX:
        return f"must be at most {USER_ID_MAX} characters"
    if not USER_ID_PATTERN.fullmatch(user_id):
        return "must start with a letter or digit and contain only letters, digits and . _ @ + : -"
    return None


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def has_any(self, roles: Iterable[str]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_privileged(self) -> bool:
        """Admins, operators and services see every user's resources."""
        return self.has_any(PRIVILEGED_ROLES)

    def may_access(self, owner_ids: Iterable[str]) -> bool:
        """Ownership check: privileged roles, or one of the resource's owners."""
        return self.is_privileged or self.user_id in set(owner_ids)

    def require_access(self, owner_ids: Iterable[str], what: str = "resource") -> None:
        if not self.may_access(owner_ids):
            raise PermissionDenied(f"{self.user_id} may not access this {what}")


ANONYMOUS = Principal(user_id="", roles=frozenset())
_principal_var: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the auth interceptor)."""
    return _principal_var.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    return _principal_var.set(principal)


@dataclass(frozen=True)
class Rule:
    """Who may call one RPC."""

    roles: frozenset[str]
    public: bool = False
    owner_scoped: bool = False
    workloads: frozenset[str] = frozenset()  # mesh services that may call it by mTLS identity alone


class AccessPolicy:
    """The authorisation table: full method name → rule, read from the contracts."""

    def __init__(self, rules: dict[str, Rule]) -> None:
        self.rules = rules

    @classmethod
    def from_services(cls, service_names: Iterable[str]) -> AccessPolicy:
        pool = descriptor_pool.Default()
        rules: dict[str, Rule] = {}
        for name in service_names:
            service = pool.FindServiceByName(name)
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(access_pb2.access):
                    continue  # no rule: default deny
                rule = options.Extensions[access_pb2.access]
                rules[f"/{service.full_name}/{method.name}"] = Rule(
                    roles=frozenset(ROLE_NAMES[r] for r in rule.roles if r in ROLE_NAMES),
                    public=rule.public,
                    owner_scoped=rule.owner_scoped,
                    workloads=frozenset(rule.workloads),
                )
        return cls(rules)

    def is_open(self, method: str) -> bool:
        service = method.split("/")[1] if method.count("/") >= 2 else ""
        rule = self.rules.get(method)
        return service in OPEN_SERVICES or (rule is not None and rule.public)

    def workload_principal(self, method: str, peer_spiffe_id: str) -> Principal | None:
        """The principal of a mesh service calling `method` without a token by its mTLS
        identity: None when the peer is no mesh service (a user's certificate, plaintext),
        PERMISSION_DENIED when the RPC's rule does not list that service."""
        prefix = spiffe_id("svc", "")
        if not peer_spiffe_id.startswith(prefix):
            return None
        workload = peer_spiffe_id.removeprefix(prefix)
        rule = self.rules.get(method)
        if rule is None or workload not in rule.workloads:
            raise PermissionDenied(f"workload {peer_spiffe_id} may not call {method}")
        return Principal(user_id=f"svc/{workload}", roles=frozenset({"service"}))

    def authorize(self, method: str, principal: Principal) -> None:
        """Raise PERMISSION_DENIED unless `principal` may call `method`."""
        if self.is_open(method):
            return
        rule = self.rules.get(method)
        if rule is None or not principal.has_any(rule.roles):
            raise PermissionDenied(f"role(s) {sorted(principal.roles)} may not call {method}")


class TokenVerifier:
    """Verifies RS256 bearer tokens against the mesh's public key."""

    def __init__(self, public_key_pem: bytes, issuer: str, audience: str) -> None:
        # Several PEM blocks may be present while keys rotate: any of them may sign.
        self._keys = [serialization.load_pem_public_key(block) for block in _pem_blocks(public_key_pem)]
        if not self._keys:
            raise ValueError("no public key in the JWT public key file")
        self._issuer = issuer
        self._audience = audience

    @classmethod
    def from_file(cls, path: Path, issuer: str, audience: str) -> TokenVerifier:
        return cls(path.read_bytes(), issuer, audience)

    def verify(self, authorization: str) -> Principal:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("expected 'authorization: Bearer <token>'")
        claims = self._decode(token)
        roles = claims.get("roles", [])
        if not isinstance(roles, list):
            raise Unauthenticated("invalid token: roles must be a list")
        subject = claims["sub"]
        problem = user_id_problem(subject) if isinstance(subject, str) else "must be a string"
        if problem is not None:  # an empty subject would be the anonymous caller
            raise Unauthenticated(f"invalid token: subject {problem}")
        return Principal(user_id=subject, roles=frozenset(map(str, roles)) & ROLES)

    def _decode(self, token: str) -> dict[str, Any]:
        error: jwt.PyJWTError | None = None
        for key in self._keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,  # type: ignore[arg-type]
                    algorithms=["RS256"],
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": ["sub", "exp", "iss", "aud"]},
                )
                return claims
            except jwt.ExpiredSignatureError as exc:
                raise Unauthenticated("token expired") from exc
            except jwt.InvalidSignatureError as exc:
                error = exc  # maybe signed by the other key of a rotation
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"invalid token: {exc}") from exc
        raise Unauthenticated(f"invalid token: {error}")


def _pem_blocks(pem: bytes) -> list[bytes]:
    marker = b"-----END PUBLIC KEY-----"
    return [part.strip() + b"\n" + marker + b"\n" for part in pem.split(marker) if part.strip()]


def mint_token(
    private_key_pem: bytes,
    user_id: str,
    roles: Iterable[str],
    *,
    issuer: str = "switchboard",
    audience: str = "switchboard",
    ttl_s: float = 3600,
    key_id: str = "switchboard-1",
) -> str:
    """A signed dev/service token (the `mesh token` command); ValueError for a subject
    the services would refuse. Unknown roles are signed as given (the verifier drops
    them; `mesh token` refuses them before)."""
    problem = user_id_problem(user_id)
    if problem is not None:
        raise ValueError(f"user id {user_id!r} {problem}")
    now = int(time.time())
    claims = {
        "sub": user_id,
        "roles": sorted(roles),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + int(ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": key_id})


def ensure_keys(private_path: Path, public_path: Path) -> None:
    """Generate the RS256 key pair once (`mesh up` and the tests' own keys; never
    `mesh token`, whose token no service would trust with a key made up on the spot)."""
    if private_path.exists() and public_path.exists():
        return
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
