"""Sessions through the Envoy gateway (REST, real processes): a resumed watch is open at
once and then streams each later version; a room that is not the participants' own is
refused with a google.rpc.Status naming `room_id`."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh.gateway import GatewaySettings
from tests.e2e.gateway_harness import Gateway, start_gateway, start_services
from tests.support.processes import EmbeddedMongo


@pytest.fixture(scope="module")
def gateway(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    services = start_services(["chat", "session"], mongo, keys, tmp / "logs")
    gateway = start_gateway(tmp, keys, services, GatewaySettings(rate_limit_rps=1000, rate_limit_burst=1000))
    yield gateway
    gateway.stop()


def _post(gateway: Gateway, path: str, token: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    answer = gateway.request("POST", path, token, json.dumps(body).encode(), timeout_s=15)
    return answer.status, json.loads(answer.body or b"{}")


def test_resumed_rest_watch_is_open_at_once_then_streams_the_next_version(
    gateway: Gateway, token: Callable[..., str]
) -> None:
    alice = token("alice", "customer")
    status, started = _post(
        gateway,
        "/v1/sessions",
        alice,
        {"advisorId": "bob", "prepaidSeconds": 600, "requestId": uuid.uuid4().hex},
    )
    assert status == 200, started
    session = started["session"]
    assert isinstance(session, dict) and session["roomId"]
    connection = http.client.HTTPConnection(gateway.address, timeout=10)  # headers must come well within
    try:
        path = f"/v1/sessions/{session['id']}:watch?afterVersion={session['version']}"
        connection.request("GET", path, headers={"authorization": f"Bearer {alice}"})
        response = connection.getresponse()  # returns on the headers: nothing else is due yet
        assert response.status == 200
        recharge = {"seconds": 60, "requestId": uuid.uuid4().hex}
        assert _post(gateway, f"/v1/sessions/{session['id']}:recharge", alice, recharge)[0] == 200
        line = response.readline()
        update = json.loads(line.strip().lstrip(b"[").rstrip(b","))
        assert int(update["session"]["version"]) == int(session["version"]) + 1
        assert update["kind"] == "SESSION_UPDATE_KIND_STATE_CHANGED"
    finally:
        connection.close()


def test_rest_start_in_someone_elses_room_is_refused_naming_room_id(
    gateway: Gateway, token: Callable[..., str]
) -> None:
    carol = token("carol", "customer")
    status, created = _post(
        gateway, "/v1/rooms", carol, {"kind": "ROOM_KIND_DIRECT", "memberIds": ["dave"], "requestId": "r1"}
    )
    assert status == 200, created
    room = created["room"]
    assert isinstance(room, dict)
    request = {"advisorId": "bob", "prepaidSeconds": 600, "requestId": uuid.uuid4().hex, "roomId": room["id"]}
    status, error = _post(gateway, "/v1/sessions", token("alice", "customer"), request)
    assert status == 403 and error["code"] == 7
    details = error["details"]
    assert isinstance(details, list)
    assert [v["field"] for d in details for v in d.get("fieldViolations", [])] == ["room_id"]
