"""An unknown field is an error, never a default: every REST route of the descriptor
(additional bindings included) refuses a JSON body field and a query parameter its
request message lacks, at the top level and inside every nested message, with 400 and
a google.rpc.Status naming the field, through the real Envoy in front of the real
services. Each case has a control, the same request without the typo, that the
gateway lets through to the service, so the sweep fails if the check refuses all."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from mesh.auth import ROLE_NAMES
from mesh.openapi import HttpBinding, RpcMethod, load_descriptor_set, rest_methods
from mesh.rest_guard import OPAQUE_WELL_KNOWN, SCALAR_WELL_KNOWN
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, Response

_T = descriptor_pb2.FieldDescriptorProto
TYPO = "zzTypo"
SAMPLE_PATH_VALUES = {"date": "2026-01-02"}
MAX_DEPTH = 4


def _messages() -> dict[str, descriptor_pb2.DescriptorProto]:
    index: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, messages: Any) -> None:
        for message in messages:
            index[f"{prefix}.{message.name}"] = message
            walk(f"{prefix}.{message.name}", message.nested_type)

    for file in load_descriptor_set().file:
        walk(file.package, file.message_type)
    return index


MESSAGES = _messages()


def _is_map(field: descriptor_pb2.FieldDescriptorProto) -> bool:
    entry = MESSAGES.get(field.type_name.lstrip("."))
    return entry is not None and entry.options.map_entry


def _wrap(field: descriptor_pb2.FieldDescriptorProto, inner: dict[str, Any]) -> tuple[Any, str]:
    """The JSON value holding `inner` in `field`, and the step it adds to the field path."""
    name = field.json_name or field.name
    if _is_map(field):
        return {"k": inner}, f'{name}["k"]'
    if field.label == _T.LABEL_REPEATED:
        return [inner], f"{name}[0]"
    return inner, name


def _nested_cases(
    type_name: str, depth: int = 0, seen: frozenset[str] = frozenset()
) -> Iterator[tuple[Any, str]]:
    """(an object of `type_name` holding a typo somewhere inside, the typo's field path),
    one per message-typed field at every depth (a recursive message once)."""
    for field in MESSAGES[type_name].field:
        target = field.type_name.lstrip(".")
        if _is_map(field):
            value = MESSAGES[target].field[1]
            if value.type != _T.TYPE_MESSAGE:
                continue
            target = value.type_name.lstrip(".")
        elif field.type != _T.TYPE_MESSAGE:
            continue
        if target in SCALAR_WELL_KNOWN | OPAQUE_WELL_KNOWN or target in seen or depth >= MAX_DEPTH:
            continue
        inner_cases = [({TYPO: 1}, TYPO), *_nested_cases(target, depth + 1, seen | {target})]
        for inner, inner_path in inner_cases:
            wrapped, step = _wrap(field, inner)
            yield {field.json_name or field.name: wrapped}, f"{step}.{inner_path}"


def _without_typo(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_typo(v) for k, v in value.items() if k != TYPO}
    if isinstance(value, list):
        return [_without_typo(v) for v in value]
    return value


@dataclass(frozen=True)
class Case:
    """One request with an unknown field, and the field path the answer must name."""

    method: RpcMethod
    binding: HttpBinding
    body: Any  # JSON, None for no body
    query: str
    field: str

    @property
    def id(self) -> str:
        return f"{self.binding.verb} {self.binding.path} {self.field}"

    def control(self) -> Case:
        body = None if self.body is None else _without_typo(self.body)
        query = "&".join(p for p in self.query.split("&") if not p.startswith(TYPO)) if self.query else ""
        return Case(self.method, self.binding, body, query, "")


def _query_cases(method: RpcMethod, binding: HttpBinding) -> Iterator[Case]:
    yield Case(method, binding, {} if binding.body else None, f"{TYPO}=1", TYPO)
    if binding.body:
        return
    message = MESSAGES[method.input_type]
    for field in message.field:  # a dotted typo inside a message field: `page.zzTypo=1`
        singular = field.type == _T.TYPE_MESSAGE and not _is_map(field) and field.label != _T.LABEL_REPEATED
        if singular and field.type_name.lstrip(".") not in SCALAR_WELL_KNOWN | OPAQUE_WELL_KNOWN:
            name = field.json_name or field.name
            yield Case(method, binding, None, f"{name}.{TYPO}=1", f"{name}.{TYPO}")


def _cases() -> list[Case]:
    cases = []
    for method in rest_methods():
        for binding in method.bindings:
            cases.extend(_query_cases(method, binding))
            if binding.body == "*":
                cases.append(Case(method, binding, {TYPO: 1}, "", TYPO))
                cases.extend(
                    Case(method, binding, body, "", path) for body, path in _nested_cases(method.input_type)
                )
    return cases


CASES = _cases()


def _path(binding: HttpBinding) -> str:
    path = binding.route
    for name in binding.path_params:
        path = path.replace("{" + name + "}", SAMPLE_PATH_VALUES.get(name, "x-" + name))
    return path


def _send(gateway: Gateway, token: Callable[..., str], case: Case) -> Response:
    url = _path(case.binding) + (f"?{case.query}" if case.query else "")
    body = None if case.body is None else json.dumps(case.body).encode()
    role = ROLE_NAMES[case.method.roles[0]]
    return gateway.request(
        case.binding.verb.upper(),
        url,
        token("alice", role),
        body,
        timeout_s=2 if case.method.server_streaming else 10,
    )


def _cluster(method: RpcMethod) -> str:
    return next(s.name for s in SERVICES if method.service in s.grpc_services)


def _named_fields(answer: Response) -> list[str]:
    status = answer.json()
    details = status.get("details") or []
    assert isinstance(details, list)
    return [v["field"] for d in details for v in d.get("fieldViolations", [])]


def test_the_sweep_covers_every_binding_with_a_body_or_query() -> None:
    covered = {(c.binding.verb, c.binding.path) for c in CASES}
    assert covered == {(b.verb, b.path) for m in rest_methods() for b in m.bindings}
    assert any("." in c.field for c in CASES), "nested messages are swept too"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_unknown_field_is_refused_with_status_naming_it(
    whole_mesh: Gateway, token: Callable[..., str], case: Case
) -> None:
    answer = _send(whole_mesh, token, case)
    assert answer.status == 400, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json"
    status = answer.json()
    assert status["code"] == 3
    assert case.field in _named_fields(answer), status
    assert urllib.parse.unquote(case.field) in str(status["message"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_same_request_without_the_typo_reaches_the_service(
    whole_mesh: Gateway, token: Callable[..., str], case: Case
) -> None:
    cluster = _cluster(case.method)
    before = whole_mesh.envoy.stat(f"cluster.{cluster}.upstream_rq_total")
    answer = _send(whole_mesh, token, case.control())
    assert whole_mesh.envoy.stat(f"cluster.{cluster}.upstream_rq_total") > before, answer.body[:300]
    if answer.status not in (0, 200):  # a live stream may stay silent; a service may refuse the values
        assert "unknown" not in str(answer.json().get("message")), answer.body[:300]


@pytest.mark.parametrize("channel", ["chat", "Channel_Chat", "CHANNEL_NOPE", "12x"])
def test_unknown_or_miscased_enum_name_in_a_body_is_400_naming_the_field(
    whole_mesh: Gateway, token: Callable[..., str], channel: str
) -> None:
    body = json.dumps({"clientMessageId": "m-1", "body": "hi", "channel": channel}).encode()
    answer = whole_mesh.request("POST", "/v1/rooms/r-1/messages", token("alice", "customer"), body)
    assert answer.status == 400, answer.body[:300]
    status = answer.json()
    assert status["code"] == 3
    assert "channel" in str(status["message"])


def test_a_body_under_the_limit_is_checked_and_reaches_the_service_whole(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """The guard reads the whole body before the transcoder: 2 MiB (over Envoy's 1 MiB
    default buffer, under the 4 MiB limit) still gets through to the service."""
    body = {"clientMessageId": "m-big", "body": "x" * (2 * 1024 * 1024), "channel": "CHANNEL_CHAT"}
    before = whole_mesh.envoy.stat("cluster.chat.upstream_rq_total")
    answer = whole_mesh.request(
        "POST", "/v1/rooms/r-1/messages", token("alice", "customer"), json.dumps(body).encode()
    )
    assert answer.status not in (413, 503), answer.body[:300]
    assert whole_mesh.envoy.stat("cluster.chat.upstream_rq_total") > before


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl for an HTTP/2 request")
def test_unknown_field_in_an_http2_body_without_content_length_is_refused(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """HTTP/2 need not send content-length: the guard must read the body all the same."""
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code} %{http_version}",
            "-H",
            f"authorization: Bearer {token('alice', 'customer')}",
            "-H",
            "content-type: application/json",
            f"{whole_mesh.url}/v1/rooms/r-1/messages",
        ],
        input=b'{"clientMessageId": "m-h2", "body": "hi", "audiance": {"kind": "AUDIENCE_KIND_ROOM"}}',
        capture_output=True,
        timeout=10,
        check=True,
    )
    body, _, status = result.stdout.decode().rpartition("\n")
    assert status == "400 2", result.stdout
    assert "audiance" in json.loads(body)["message"]
