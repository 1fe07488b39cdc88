"""Fuzzing every RPC of the mesh from its descriptor, over native gRPC (straight at
the service) and over REST (through the gateway): whatever arrives, the answer is
never UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED (REST: never a 5xx), no process
crashes, oversized messages are refused with RESOURCE_EXHAUSTED or INVALID_ARGUMENT
(over REST too), and no write that violates validation is ever stored: every record
of every writing service is read back from its database and checked."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.chat.v1 import chat_service_pb2 as cpb
from switchboard.chat.v1 import chat_service_pb2_grpc as cgrpc
from switchboard.order.v1 import order_service_pb2 as opb
from switchboard.registration.v1 import registration_service_pb2 as rpb
from switchboard.session.v1 import session_service_pb2 as spb
from switchboard.session.v1 import session_service_pb2_grpc as sgrpc
from switchboard.type.v1 import money_pb2

from chat_svc.model import MessageKind, RoomKind
from mesh.auth import ROLE_NAMES
from mesh.client import bearer
from mesh.jobs_catalogue import MAX_STRING_PARAMETER, JobDefinition, load_catalogue
from mesh.openapi import RpcMethod, rest_methods, rpc_methods
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway
from tests.security import stored_rules
from tests.security.fuzz import import_contracts, json_bodies, message_class, messages, text

import_contracts()
POOL = descriptor_pool.Default()
NEVER = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
# Bounded: the whole suite stays well under two minutes on two cores.
UNARY_EXAMPLES = 30
STREAM_EXAMPLES = 8
REST_EXAMPLES = 10


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _host(whole_mesh: Gateway, method: RpcMethod) -> str:
    """The service process that serves `method` (the event admin RPCs: registration_svc)."""
    for spec in SERVICES:
        if method.service in spec.grpc_services:
            return whole_mesh.services[spec.name].target
    return whole_mesh.services["registration"].target


def _role(method: RpcMethod) -> str:
    """The most privileged role the table allows, so that the request reaches the handler."""
    names = [ROLE_NAMES[r] for r in method.roles]
    return "admin" if "admin" in names else names[0]


def _call(
    channel: grpc.Channel, method: RpcMethod, request: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    try:
        if method.server_streaming:
            call = channel.unary_stream(method.grpc_path, None, None)(request, metadata=metadata, timeout=1.0)
            try:
                next(iter(call), None)
            finally:
                call.cancel()
        else:
            channel.unary_unary(method.grpc_path, None, None)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        if not isinstance(error, grpc.Call):
            return grpc.StatusCode.UNKNOWN
        if error.code() == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK  # we cancelled a live stream after its first message
        return error.code()
    return grpc.StatusCode.OK


def _assert_alive(whole_mesh: Gateway) -> None:
    dead = [name for name, process in whole_mesh.services.items() if process.exited()]
    assert dead == [], f"crashed: {dead}"


@pytest.mark.parametrize("method", rpc_methods(), ids=lambda m: m.grpc_path.removeprefix("/switchboard."))
def test_fuzzed_grpc_requests_never_get_internal_or_unknown(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    metadata = bearer(token("fuzzer", _role(method)))
    descriptor = POOL.FindMessageTypeByName(method.input_type)
    seen: dict[str, int] = {}
    with grpc.insecure_channel(_host(whole_mesh, method)) as channel:

        @fuzz_settings(STREAM_EXAMPLES if method.server_streaming else UNARY_EXAMPLES)
        @given(messages(descriptor))
        def check(request: Message) -> None:
            code = _call(channel, method, request.SerializeToString(), metadata)
            seen[code.name] = seen.get(code.name, 0) + 1
            assert code not in NEVER, f"{method.grpc_path} answered {code.name} to {request}"

        check()
    _assert_alive(whole_mesh)
    # Some requests got through validation: the fuzzer exercised more than the validator.
    assert seen, seen


@pytest.mark.parametrize("method", rpc_methods(), ids=lambda m: m.grpc_path.removeprefix("/switchboard."))
def test_oversized_requests_are_refused(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    """A 5 MiB message exceeds the transport limit; a 300 KiB string in any one string
    field exceeds every field's bound. Both through the gateway and straight."""
    metadata = bearer(token("fuzzer", _role(method)))
    cls = message_class(method.input_type)
    strings = [
        f for f in cls.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]
    wrong = []
    targets = [_host(whole_mesh, method)]
    if any(method.service in spec.grpc_services for spec in SERVICES):
        targets.append(whole_mesh.address)
    for target in targets:
        with grpc.insecure_channel(target) as channel:
            huge = b"\x0a" + _varint(5 << 20) + b"x" * (5 << 20)  # field 1, length-delimited
            code = _call(channel, method, huge, metadata)
            if code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
                wrong.append(f"{target} 5 MiB: {code.name}")
            for field in strings:
                request = cls(**{field.name: "x" * 300_000})
                code = _call(channel, method, request.SerializeToString(), metadata)
                if code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT):
                    wrong.append(f"{target} {field.name}=300 KiB: {code.name}")
    _assert_alive(whole_mesh)
    assert wrong == [], "\n".join(wrong)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@pytest.mark.parametrize("method", rest_methods(), ids=lambda m: f"{m.http_verb} {m.http_path}")
def test_fuzzed_rest_requests_never_get_a_server_error(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    bearer_token = token("fuzzer", _role(method))
    descriptor = POOL.FindMessageTypeByName(method.input_type)

    @fuzz_settings(3 if method.server_streaming else REST_EXAMPLES)
    @given(
        st.lists(text(), min_size=len(method.path_params), max_size=len(method.path_params)),
        json_bodies(descriptor),
        st.booleans(),
    )
    def check(path_values: list[str], body: dict[str, object], raw: bool) -> None:
        path = method.http_path
        for name, value in zip(method.path_params, path_values, strict=True):
            path = path.replace("{" + name + "}", urllib.parse.quote(value or "x", safe=""))
        data = None
        if method.http_body:
            data = json.dumps(body).encode() if not raw else json.dumps(body).encode()[:-1]  # truncated JSON
        elif body:
            path += "?" + urllib.parse.urlencode({k: str(v) for k, v in body.items()})
        answer = whole_mesh.request(
            method.http_verb.upper(), path, bearer_token, data, timeout_s=1 if method.server_streaming else 10
        )
        assert answer.status < 500, (
            f"{method.http_verb} {path} {data!r}: {answer.status} {answer.body[:300]!r}"
        )

    check()
    _assert_alive(whole_mesh)


@pytest.mark.parametrize("method", rest_methods(), ids=lambda m: f"{m.http_verb} {m.http_path}")
def test_oversized_rest_requests_are_refused(
    whole_mesh: Gateway, token: Callable[..., str], method: RpcMethod
) -> None:
    """Through the gateway's JSON transcoding: a 5 MiB body, and a 300 KiB value in
    any one string field (body, query or path), are refused as INVALID_ARGUMENT (400)
    or RESOURCE_EXHAUSTED (429), or by Envoy before they reach a service as too large
    (413 body, 414/431 URL; for the 5 MiB body, possibly a connection closed mid-upload)."""
    bearer_token = token("fuzzer", _role(method))
    cls = message_class(method.input_type)
    strings = [  # (proto name, JSON name) of each singular string field
        (f.name, f.json_name)
        for f in cls.DESCRIPTOR.fields
        if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]
    base_path = method.http_path
    for name in method.path_params:
        base_path = base_path.replace("{" + name + "}", "x")
    attempts: list[tuple[str, str, bytes | None]] = []
    huge = "x" * 300_000
    for name in method.path_params:
        path = method.http_path
        for other in method.path_params:
            path = path.replace("{" + other + "}", huge if other == name else "x")
        attempts.append((f"path {name}=300 KiB", path, b"{}" if method.http_body else None))
    for field in (json_name for name, json_name in strings if name not in method.path_params):
        if method.http_body:
            attempts.append((f"{field}=300 KiB", base_path, json.dumps({field: huge}).encode()))
        else:
            attempts.append(
                (f"?{field}=300 KiB", f"{base_path}?{urllib.parse.urlencode({field: huge})}", None)
            )
    if method.http_body:
        attempts.append((FIVE_MIB, base_path, json.dumps(five_mib_body(cls)).encode()))
    wrong = []
    for what, path, body in attempts:
        try:
            answer = whole_mesh.request(method.http_verb.upper(), path, bearer_token, body, timeout_s=30)
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            # Envoy may answer 413 and close while the client still sends the 5 MiB:
            # the client then sees the connection reset. The body never got through.
            if what != FIVE_MIB:
                wrong.append(f"{what}: connection failed: {error!r}")
            continue
        if answer.status not in REFUSED_OVERSIZED_HTTP:
            wrong.append(f"{what}: {answer.status} {answer.body[:200]!r}")
    _assert_alive(whole_mesh)
    assert wrong == [], "\n".join(wrong)


FIVE_MIB = "5 MiB body"


def five_mib_body(cls: type[Message]) -> dict[str, object]:
    """5 MiB in a string field the request has, singular first, else repeated. Not in
    an unknown field: the transcoder drops those while it streams the body through, and
    a request with no string field (SubscribeRequest) would then become a valid,
    endless subscription rather than an oversized message."""
    strings = [f for f in cls.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
    fields = sorted(strings, key=lambda f: f.is_repeated)
    huge = "x" * (5 << 20)
    if not fields:
        return {"x": huge}
    return {fields[0].json_name: [huge] if fields[0].is_repeated else huge}


REFUSED_OVERSIZED_HTTP = {400, 413, 414, 429, 431}


# Read-back: after fuzzing, every record each service stored satisfies the contract.
# The module's gRPC and REST fuzzers above wrote through the same mesh; the tests
# below add boundary-value fuzzing of every write and then read each service's own
# database (tests/security/stored_rules.py), so they check both.

VICTIM = f"victim-{uuid.uuid4().hex[:8]}"  # never calls: nothing may be stored in its name
CALLERS = {"fuzzer"}  # every user that called this module's mesh


def _writer(token: Callable[..., str], kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A fresh customer that fuzzes one service's writes."""
    user = f"fuzz-{kind}-{uuid.uuid4().hex[:6]}"
    CALLERS.add(user)
    return user, bearer(token(user, "customer"))


def _rpc(path: str) -> RpcMethod:
    return next(m for m in rpc_methods() if m.grpc_path == path)


def _write(channel: grpc.Channel, path: str, request: Message, metadata: tuple[tuple[str, str], ...]) -> bool:
    """Sends one write; True when it was accepted. Never UNKNOWN or INTERNAL."""
    code = _call(channel, _rpc(path), request.SerializeToString(), metadata)
    assert code not in NEVER, f"{path} answered {code.name} to {request}"
    return code == grpc.StatusCode.OK


def _no_problems(found: dict[str, list[str]]) -> None:
    broken = {record: problems for record, problems in found.items() if problems}
    assert broken == {}, "\n".join(f"{record}: {problems}" for record, problems in broken.items())


def _mostly(valid: list[Any], hostile: list[Any]) -> st.SearchStrategy[Any]:
    """Values at the bounds: five times in six a valid one (so that writes get
    stored and deeper rules run), else one just past a bound or hostile."""
    accepted, refused = st.sampled_from(valid), st.sampled_from(hostile)
    return st.integers(0, 5).flatmap(lambda n: refused if n == 5 else accepted)


def _keys() -> st.SearchStrategy[str]:
    """Idempotency keys: mostly fresh (so writes are new), sometimes at the bounds."""
    fresh = st.uuids().map(lambda u: u.hex)
    return st.one_of(fresh, fresh, st.sampled_from(["", " ", "x" * 128, "x" * 129, "ü", "\x00"]), text())


PLACE_ORDER = "/switchboard.order.v1.OrderService/PlaceOrder"


def test_fuzzed_orders_are_all_stored_valid(whole_mesh: Gateway, token: Callable[..., str]) -> None:
    """Every stored order has 1 to 100 lines, valid SKUs and quantities, one
    currency, a total within int64, and belongs to the customer who placed it."""
    user, metadata = _writer(token, "orders")
    line = opb.LineItem(
        sku="sku-1", quantity=1, unit_price=money_pb2.Money(currency_code="EUR", amount_minor=250)
    )
    lines = st.builds(
        opb.LineItem,
        sku=_mostly(["a", "sku-1", "x" * 64, "A.b_c-9"], ["", "x" * 65, "bad sku", "ü", "a/b"]),
        quantity=_mostly([1, 7, 1_000_000], [-1, 0, 1_000_001, 2**63 - 1]),
        unit_price=st.builds(
            money_pb2.Money,
            currency_code=_mostly(["EUR"], ["USD", "eur", "", "EURO"]),
            amount_minor=_mostly([0, 1, 10**12], [-1, 10**12 + 1, 2**63 - 1]),
        ),
    )
    order_lines = st.one_of(
        st.lists(lines, min_size=1, max_size=3), st.sampled_from([[], [line] * 100, [line] * 101])
    )
    with grpc.insecure_channel(whole_mesh.services["order"].target) as channel:
        control = opb.PlaceOrderRequest(lines=[line], idempotency_key=uuid.uuid4().hex)
        assert _write(channel, PLACE_ORDER, control, metadata)

        @fuzz_settings(UNARY_EXAMPLES)
        @given(order_lines, _keys())
        def place(order_lines: list[opb.LineItem], key: str) -> None:
            _write(
                channel, PLACE_ORDER, opb.PlaceOrderRequest(lines=order_lines, idempotency_key=key), metadata
            )

        place()
    stored = stored_rules.stored_orders(whole_mesh.services["order"])
    _no_problems({f"order {o.id}": stored_rules.order_problems(o) for o in stored})
    assert {o.customer_id for o in stored} <= CALLERS
    assert sum(o.customer_id == user for o in stored) > 1  # the fuzzed writes, not only the control


CREATE_ROOM = "/switchboard.chat.v1.ChatService/CreateRoom"
SEND_MESSAGE = "/switchboard.chat.v1.ChatService/SendMessage"
ADD_MEMBER = "/switchboard.chat.v1.ChatService/AddMember"
BAD_IDS = ["", " ", "x" * 129, "\x00 "]
FULL_ROOM = [f"m{i}" for i in range(999)]  # with the caller: 1000 members, the most


def test_fuzzed_rooms_and_messages_are_all_stored_valid(
    whole_mesh: Gateway, token: Callable[..., str]
) -> None:
    """Every stored room has a known kind, a name of at most 100 characters (GROUP:
    not blank), distinct valid members, at most two for DIRECT; every stored message
    has a body of 1 to 4096 UTF-8 bytes, an audience fitting its kind, recipients and
    a sender that are members. A room the writer is not in is never changed by it."""
    user, metadata = _writer(token, "chat")
    owner, owner_metadata = _writer(token, "chat-owner")
    with grpc.insecure_channel(whole_mesh.services["chat"].target) as channel:
        stub = cgrpc.ChatServiceStub(channel)

        def create(metadata: tuple[tuple[str, str], ...], **fields: Any) -> str:
            request = cpb.CreateRoomRequest(request_id=uuid.uuid4().hex, **fields)
            return stub.CreateRoom(request, metadata=metadata, timeout=10).room.id

        group = create(metadata, kind=cpb.ROOM_KIND_GROUP, display_name="fuzz", member_ids=["bob"])
        direct = create(metadata, kind=cpb.ROOM_KIND_DIRECT, member_ids=["bob"])
        foreign = create(owner_metadata, kind=cpb.ROOM_KIND_DIRECT, member_ids=["carol"])
        rooms = _mostly([group, direct], [foreign, "", "x" * 129])
        members = st.lists(_mostly(["bob", "carol", user, "x" * 128], [*BAD_IDS, VICTIM]), max_size=3)

        @fuzz_settings(UNARY_EXAMPLES)
        @given(
            _mostly([1, 2, 3], [0, 4, -1]),
            _mostly(["g", "x" * 100, "🙂" * 100], ["", " ", "x" * 101, "🙂" * 101]),
            st.one_of(members, members, st.sampled_from([FULL_ROOM, [*FULL_ROOM, "one-too-many"]])),
            _keys(),
            _mostly(["", "s-1", "x" * 128], [" ", "x" * 129]),
        )
        def create_rooms(kind: int, name: str, member_ids: list[str], key: str, session_id: str) -> None:
            request = cpb.CreateRoomRequest(
                kind=kind,  # type: ignore[arg-type]
                display_name=name,
                member_ids=member_ids,
                request_id=key,
                session_id=session_id,
            )
            _write(channel, CREATE_ROOM, request, metadata)

        # (audience kind, recipients): the valid pairs name members of both rooms.
        audiences = _mostly(
            [(0, []), (1, []), (2, ["bob"]), (2, [user, "bob"]), (3, ["bob"])],
            [
                (1, ["bob"]),
                (2, []),
                (2, ["bob"] * 101),
                (3, ["bob", user]),
                (3, ["carol"]),
                (4, []),
                (-1, []),
            ],
        )

        @fuzz_settings(UNARY_EXAMPLES)
        @given(
            rooms,
            _mostly(
                ["a", "x" * 4096, "é" * 2048, "🙂" * 1024],
                ["", " ", "\n\t", "x" * 4097, "é" * 2049, "🙂" * 1025],
            ),
            _mostly([0, 1, 2, 3], [4, -1]),
            audiences,
            _keys(),
        )
        def send(room: str, body: str, channel_kind: int, audience: tuple[int, list[str]], key: str) -> None:
            request = cpb.SendMessageRequest(
                room_id=room,
                client_message_id=key,
                body=body,
                channel=channel_kind,  # type: ignore[arg-type]
                audience=cpb.Audience(kind=audience[0], recipient_ids=audience[1]),  # type: ignore[arg-type]
            )
            _write(channel, SEND_MESSAGE, request, metadata)

        @fuzz_settings(UNARY_EXAMPLES)
        @given(rooms, _mostly(["dave", "x" * 128, "bob"], [*BAD_IDS, user]))
        def add(room: str, member: str) -> None:
            _write(channel, ADD_MEMBER, cpb.AddMemberRequest(room_id=room, user_id=member), metadata)

        create_rooms()
        send()
        add()
    rooms_stored = {r.id: r for r in stored_rules.stored_rooms(whole_mesh.services["chat"])}
    messages = stored_rules.stored_messages(whole_mesh.services["chat"])
    _no_problems({f"room {r.id}": stored_rules.room_problems(r) for r in rooms_stored.values()})
    _no_problems({f"message {m.id}": stored_rules.message_problems(m, rooms_stored) for m in messages})
    assert stored_rules.duplicate_sequences(messages) == []
    # SESSION rooms may be made by chat_svc itself for a session, owned by its advisor.
    assert {r.owner_id for r in rooms_stored.values() if r.kind != RoomKind.SESSION} <= CALLERS
    users = [m for m in messages if m.kind == MessageKind.USER]
    assert {m.sender_id for m in users} <= CALLERS
    # Nobody removes members here, so membership at send time is membership now.
    for message in (m for m in users if m.sender_id == user):
        members_now = set(rooms_stored[message.room_id].member_ids)
        assert user in members_now and set(message.recipient_ids) <= members_now, message
    assert sorted(rooms_stored[foreign].member_ids) == sorted([owner, "carol"])
    assert (
        sum(r.owner_id == user for r in rooms_stored.values()) > 2
    )  # fuzzed rooms, not only the two made here
    assert any(m.sender_id == user for m in users)


START_SESSION = "/switchboard.session.v1.SessionService/StartSession"
RECHARGE = "/switchboard.session.v1.SessionService/Recharge"
GOOD_SECONDS = [1, 60, 86_400]
BAD_SECONDS = [-1, 0, 86_401, 2**31, 2**63 - 1]


def test_fuzzed_sessions_are_all_stored_valid(whole_mesh: Gateway, token: Callable[..., str]) -> None:
    """Every stored session has a customer and a different advisor of valid ids, and
    1 to 86,400 paid seconds per purchase; a customer never starts one in another
    user's name."""
    user, metadata = _writer(token, "sessions")
    with grpc.insecure_channel(whole_mesh.services["session"].target) as channel:
        stub = sgrpc.SessionServiceStub(channel)
        control = spb.StartSessionRequest(advisor_id="adv", prepaid_seconds=600, request_id=uuid.uuid4().hex)
        session = stub.StartSession(control, metadata=metadata, timeout=10).session

        @fuzz_settings(UNARY_EXAMPLES)
        @given(
            _mostly(["", user], [VICTIM]),
            _mostly(["adv", "x" * 128], [*BAD_IDS, user]),
            _mostly(GOOD_SECONDS, BAD_SECONDS),
            _mostly(["", "r-1", "x" * 128], ["x" * 129]),
            _keys(),
        )
        def start(customer: str, advisor: str, seconds: int, room: str, key: str) -> None:
            request = spb.StartSessionRequest(
                customer_id=customer,
                advisor_id=advisor,
                prepaid_seconds=seconds,
                room_id=room,
                request_id=key,
            )
            _write(channel, START_SESSION, request, metadata)

        @fuzz_settings(UNARY_EXAMPLES)
        @given(_mostly([session.id], ["", "x" * 129]), _mostly(GOOD_SECONDS, BAD_SECONDS), _keys())
        def recharge(session_id: str, seconds: int, key: str) -> None:
            request = spb.RechargeRequest(session_id=session_id, seconds=seconds, request_id=key)
            _write(channel, RECHARGE, request, metadata)

        start()
        recharge()
    stored = stored_rules.stored_sessions(whole_mesh.services["session"])
    _no_problems({f"session {s.id}": stored_rules.session_problems(s) for s in stored})
    assert VICTIM not in {s.customer_id for s in stored}
    assert sum(s.customer_id == user for s in stored) > 1
    assert next(s for s in stored if s.id == session.id).recharge_request_ids  # some recharges got through


SUBMIT_JOB = "/switchboard.registration.v1.RegistrationService/SubmitJob"
# Definitions whose largest valid parameters are expensive to run (256 MiB to hash,
# 600 s of sleep) are only submitted to run later, so the fuzzer never runs them.
RUN_LATER_ONLY = {"checksum", "sleep"}


def _parameters(definition: JobDefinition | None) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters of a definition at and just past each bound of its catalogue entry,
    sometimes with an unknown key or a hostile value."""
    if definition is None:
        return st.just({})
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for spec in definition.parameters:
        if spec.type == "bool":
            choices[spec.name] = _mostly([True, False], ["true", 1])
        elif spec.type == "string":
            limit = spec.max_length or MAX_STRING_PARAMETER
            choices[spec.name] = _mostly(["", "x", "x" * limit], ["x" * (limit + 1), 1, [1]])
        else:
            low = spec.min if spec.min is not None else -1e6
            high = spec.max if spec.max is not None else 1e6
            past = [low - 1, high + 1, "1", float("nan")] + ([low + 0.5] if spec.type == "int" else [])
            choices[spec.name] = _mostly([low, high, int((low + high) // 2)], past)
    required = {s.name: choices[s.name] for s in definition.parameters if s.required}
    optional = {s.name: choices[s.name] for s in definition.parameters if not s.required}
    fitting = st.fixed_dictionaries(required, optional=optional)
    stranger = st.dictionaries(
        st.sampled_from(["unknown", "$where", ""]), JSON_SCALARS_FOR_JOBS, min_size=1, max_size=2
    )
    return st.one_of(
        fitting, fitting, fitting, st.builds(lambda a, b: {**a, **b}, fitting, stranger), st.just({})
    )


JSON_SCALARS_FOR_JOBS = st.sampled_from([None, True, 0, 1.5, "x", [1], {"a": 1}])


def test_fuzzed_job_submissions_are_all_stored_valid(whole_mesh: Gateway, token: Callable[..., str]) -> None:
    """Every stored job names a catalogue definition, its parameters fit that
    definition, its key is 1 to 128 characters, run_at at most 30 days ahead, and it
    belongs to the user who submitted it."""
    user, metadata = _writer(token, "jobs")
    catalogue = load_catalogue()
    now = int(time.time())
    later, too_late = [now + 3600, now + 29 * 86400], [now + 31 * 86400, 2**62, -(2**62)]

    @st.composite
    def submissions(draw: st.DrawFn) -> rpb.SubmitJobRequest:
        name = draw(_mostly([d.name for d in catalogue.jobs], ["", "nope", "x" * 65, "Noop", "checksum "]))
        request = rpb.SubmitJobRequest(definition=name, idempotency_key=draw(_keys()))
        request.parameters.update(draw(_parameters(catalogue.get(name))))
        run_later = name in RUN_LATER_ONLY
        when = draw(_mostly(later if run_later else [None, 0, now - 60, *later], too_late))
        if when is not None:
            request.run_at.seconds = when
        return request

    with grpc.insecure_channel(whole_mesh.services["registration"].target) as channel:
        control = rpb.SubmitJobRequest(definition="noop", idempotency_key=uuid.uuid4().hex)
        assert _write(channel, SUBMIT_JOB, control, metadata)

        @fuzz_settings(UNARY_EXAMPLES * 2)
        @given(submissions())
        def submit(request: rpb.SubmitJobRequest) -> None:
            _write(channel, SUBMIT_JOB, request, metadata)

        submit()
    stored = stored_rules.stored_jobs(whole_mesh.services["registration"])
    _no_problems({f"job {j.id}": stored_rules.job_problems(j, catalogue) for j in stored})
    assert {j.owner_id for j in stored} <= CALLERS
    assert sum(j.owner_id == user for j in stored) > 1
