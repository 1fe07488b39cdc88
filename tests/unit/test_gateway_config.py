"""The rendered Envoy config: valid for Envoy 1.40, a route per RPC to its service,
timeouts and retries by RPC kind, the JWKS of the mesh key, settings from env."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from google.protobuf import descriptor_pb2

from mesh.auth import mint_token
from mesh.gateway import GatewaySettings, envoy_binary, jwks, local_upstreams, render_to
from mesh.openapi import rpc_methods
from mesh.topology import SERVICES


def _render(tmp_path: Path, keys: Path, **settings: Any) -> tuple[Path, dict[str, Any]]:
    out = render_to(tmp_path / "envoy.yaml", keys, settings=GatewaySettings(**settings))
    return out, yaml.safe_load(out.read_text())


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return typed


def _routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    routes = _hcm(config)["route_config"]["virtual_hosts"][0]["routes"]
    return {r["match"].get("path") or r["match"]["prefix"]: r for r in routes if "route" in r}


def _filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in _hcm(config)["http_filters"] if f["name"] == name)["typed_config"]
    return found


def test_rendered_config_passes_envoy_validation(tmp_path: Path, keys: Path) -> None:
    out, _ = _render(tmp_path, keys)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_every_rpc_of_a_served_service_routes_to_its_cluster(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    routes = _routes(config)
    for spec in SERVICES:
        for method in (m for m in rpc_methods() if m.service in spec.grpc_services):
            assert routes[method.grpc_path]["route"]["cluster"] == spec.name


def test_streams_have_no_timeout_and_unary_calls_have_one(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys, unary_timeout_s=7)
    routes = _routes(config)
    for method in (m for m in rpc_methods() if m.grpc_path in routes):
        expected = "0s" if method.server_streaming else "7.0s"
        assert routes[method.grpc_path]["route"]["timeout"] == expected, method.grpc_path


def test_only_reads_are_retried_when_the_upstream_is_unavailable(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    routes = _routes(config)
    for method in (m for m in rpc_methods() if m.grpc_path in routes):
        retry_on = routes[method.grpc_path]["route"]["retry_policy"]["retry_on"].split(",")
        assert ("unavailable" in retry_on) == (method.http_verb == "get"), method.grpc_path
        assert "connect-failure" in retry_on


def test_rate_limit_of_each_route_comes_from_the_environment(
    tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_RPS", "7")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_BURST", "11")
    out = render_to(tmp_path / "envoy.yaml", keys)
    routes = _routes(yaml.safe_load(out.read_text())).values()
    for route in (r for r in routes if "headers" not in r["match"]):  # CORS preflight is not limited
        bucket = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]["token_bucket"]
        assert (bucket["tokens_per_fill"], bucket["max_tokens"]) == (7, 11)


def test_jwks_in_the_config_verifies_a_token_minted_by_the_mesh(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    provider = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["switchboard"]
    key_set = jwt.PyJWKSet.from_json(provider["local_jwks"]["inline_string"])
    token = mint_token((keys / "jwt.key").read_bytes(), "alice", ["customer"])
    key = next(k for k in key_set.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=provider["audiences"][0])
    assert claims["sub"] == "alice"
    assert provider["forward"] is True


def test_api_paths_require_a_token_and_the_console_does_not(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    rules = _filter(config, "envoy.filters.http.jwt_authn")["rules"]
    required = {r["match"]["prefix"] for r in rules if "requires" in r}
    assert required == {"/v1/", "/switchboard."}


def test_transcoder_covers_every_service_with_http_rules(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    transcoder = _filter(config, "envoy.filters.http.grpc_json_transcoder")
    with_rules = {m.service for m in rpc_methods() if m.http_verb}
    served = {s for u in local_upstreams() for s in u.grpc_services}
    assert set(transcoder["services"]) == with_rules & served
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["print_options"]["stream_newline_delimited"] is True


def test_transcoder_descriptor_set_carries_google_rpc_status(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(
        Path(_filter(config, "envoy.filters.http.grpc_json_transcoder")["proto_descriptor"]).read_bytes()
    )
    names = {f.name for f in files.file}
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto"} <= names


def test_console_config_carries_dev_tokens_only_when_enabled(tmp_path: Path, keys: Path) -> None:
    render_to(tmp_path / "on.yaml", keys, settings=GatewaySettings(dev_tokens=True))
    render_to(tmp_path / "off.yaml", keys, settings=GatewaySettings(dev_tokens=False))
    on = (tmp_path / "on.assets" / "config.js").read_text()
    off = (tmp_path / "off.assets" / "config.js").read_text()
    dev = json.loads(on.split("=", 1)[1].rstrip().rstrip(";"))
    assert {u["user"] for u in dev["devUsers"]} >= {"alice", "bob", "admin"}
    assert json.loads(off.split("=", 1)[1].rstrip().rstrip(";"))["devUsers"] == []


def test_jwks_names_the_key_id_the_mesh_signs_with(keys: Path) -> None:
    key_set = json.loads(jwks((keys / "jwt.pub").read_bytes()))
    assert [k["kid"] for k in key_set["keys"]] == ["switchboard-1"]
    assert key_set["keys"][0]["alg"] == "RS256"


def test_listeners_share_their_port_across_workers_unless_told_not_to(tmp_path: Path, keys: Path) -> None:
    def reuse(**settings: Any) -> list[bool]:
        _, config = _render(tmp_path, keys, **settings)
        return [listener["enable_reuse_port"] for listener in config["static_resources"]["listeners"]]

    assert reuse() == [True]
    assert reuse(reuse_port=False) == [False]


def test_rest_guard_runs_after_authentication_and_before_the_transcoder(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    names = [f["name"] for f in _hcm(config)["http_filters"]]
    # gRPC-Web is decoded before jwt_authn, so a refused gRPC-Web call gets grpc-status.
    assert names.index("envoy.filters.http.grpc_web") < names.index("envoy.filters.http.jwt_authn")
    assert names.index("envoy.filters.http.jwt_authn") < names.index("envoy.filters.http.lua")
    assert names.index("envoy.filters.http.lua") < names.index("envoy.filters.http.grpc_json_transcoder")


def test_transcoder_refuses_unknown_query_parameters_and_enum_case(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    transcoder = _filter(config, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
    assert transcoder["case_insensitive_enum_parsing"] is False
    assert not transcoder.get("ignore_unknown_query_parameters")


def test_rest_guard_knows_every_binding_of_the_descriptor() -> None:
    from mesh.openapi import rest_methods
    from mesh.rest_guard import lua_pattern, route_table

    routes = {(r["v"], r["p"]) for r in route_table()}
    for method in rest_methods():
        for binding in method.bindings:
            assert (binding.verb.upper(), lua_pattern(binding.path)) in routes
    # Custom verbs first: `/v1/jobs/{id}:watch` must not be read as GetJob of "id:watch".
    custom = [r["x"] for r in route_table()]
    assert custom == sorted(custom, reverse=True)


def test_lua_pattern_of_a_template() -> None:
    from mesh.rest_guard import lua_pattern

    assert lua_pattern("/v1/rooms/{room_id}/messages") == "^/v1/rooms/[^/]+/messages$"
    assert lua_pattern("/v1/rooms:subscribe") == "^/v1/rooms:subscribe$"
    assert lua_pattern("/v1/{name=shelves/*}/books-x") == "^/v1/shelves/[^/]+/books%-x$"
    assert lua_pattern("/v1/files/{path=**}") == "^/v1/files/.+$"


def _mappers(config: dict[str, Any]) -> list[dict[str, Any]]:
    mappers: list[dict[str, Any]] = _hcm(config)["local_reply_config"]["mappers"]
    return mappers


def test_every_local_error_status_of_a_rest_caller_becomes_status_json(tmp_path: Path, keys: Path) -> None:
    from mesh.gateway import LOCAL_REPLY_CODES

    _, config = _render(tmp_path, keys)
    by_status = {}
    for mapper in _mappers(config):
        text = json.dumps(mapper["filter"])
        for status in LOCAL_REPLY_CODES:
            if f'"default_value": {status},' in text and "header_filter" in text and "/healthz" not in text:
                by_status.setdefault(status, mapper)
    assert set(by_status) == set(LOCAL_REPLY_CODES)
    for status, mapper in by_status.items():
        body = mapper["body_format_override"]
        assert body["content_type"] == "application/json"
        assert body["json_format"]["code"] == LOCAL_REPLY_CODES[status]
        assert body["json_format"]["details"] == []


def test_local_403_is_rewritten_to_401_for_every_caller(tmp_path: Path, keys: Path) -> None:
    _, config = _render(tmp_path, keys)
    rewrites = [m for m in _mappers(config) if '"default_value": 403,' in json.dumps(m["filter"])]
    assert len(rewrites) == 2  # REST (with a Status body) and gRPC (grpc-status only)
    assert all(m["status_code"] == 401 for m in rewrites)
    assert "body_format_override" not in rewrites[-1]
