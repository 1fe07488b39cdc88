"""Renders the Envoy gateway config from gateway/envoy.yaml.j2 and the service
table, for `mesh up` (local ports) and for Kubernetes (service DNS names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from mesh.topology import GATEWAY_ADMIN_PORT, GATEWAY_PORT, SERVICES

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "gateway"
DESCRIPTOR_SET = Path(__file__).resolve().parent.parent / "gen" / "switchboard.pb"


def render(context: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("envoy.yaml.j2").render(**context)


def local_context(keys_dir: Path) -> dict[str, Any]:
    return {
        "listen_port": GATEWAY_PORT,
        "admin_port": GATEWAY_ADMIN_PORT,
        "descriptor_set": str(DESCRIPTOR_SET),
        "keys_dir": str(keys_dir),
        "upstreams": [
            {
                "name": spec.name,
                "host": "127.0.0.1",
                "port": spec.grpc_port,
                "grpc_services": list(spec.grpc_services),
            }
            for spec in SERVICES
        ],
    }


def render_local(out: Path, keys_dir: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(local_context(keys_dir)))
    return out
