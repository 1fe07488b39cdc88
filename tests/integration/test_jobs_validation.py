"""SubmitJob refuses every bad parameter of every catalogue definition with
INVALID_ARGUMENT naming the field (`parameters.<name>`), never INTERNAL: NaN and
±Infinity, integers out of range, strings too long, wrong types, unknown and
missing parameters, dates and time zones daily_report could not use. Against a
real registration_svc (no scheduler: nothing runs)."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.registration.v1 import registration_service_pb2_grpc as reg_grpc

from mesh.client import bearer
from mesh.jobs_catalogue import MAX_SAFE_INT, load_catalogue
from tests.support.broker import delete_matching
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique

NAN, INF = math.nan, math.inf
# (definition, parameters, the field at fault)
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    *[("checksum", {"size": v}, "parameters.size") for v in (NAN, INF, -INF, 0, 268435457, 1.5, "10", True)],
    *[("checksum", {"size": v}, "parameters.size") for v in (1e300, -1e300, [1], {"a": 1}, None)],
    *[("checksum", {"size": 1, "seed": v}, "parameters.seed") for v in (-1, 4294967296, NAN, "x", 0.5)],
    *[("sleep", {"seconds": v}, "parameters.seconds") for v in (NAN, INF, -INF, -1, 601, "5", False, None)],
    *[("sleep", {"seconds": 1, "steps": v}, "parameters.steps") for v in (0, 1001, 2.5, NAN, -INF)],
    *[("always_fail", {"message": v}, "parameters.message") for v in ("x" * 201, 5, NAN, True, ["x"])],
    *[
        ("daily_report", {"date": v}, "parameters.date")
        for v in ("9999-12-31", "0001-01-01", "2024-02-30", "yesterday", "", "2024-1-1", 20240101, NAN, None)
    ],
    *[
        ("daily_report", {"date": "2024-01-01", "time_zone": v}, "parameters.time_zone")
        for v in ("Mars/Base", "../../etc/passwd", "zone.tab", "Europe", "UTC ", "Z" * 65, 3, INF)
    ],
    ("noop", {"bogus": 1}, "parameters.bogus"),
    ("noop", {"bogus": NAN}, "parameters.bogus"),
    ("sleep", {"seconds": 1, "Seconds": 1}, "parameters.Seconds"),
    ("checksum", {}, "parameters.size"),
    ("daily_report", {}, "parameters.date"),
]


def struct_of(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def violated_fields(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return {v.field for v in bad_request.field_violations}


@pytest.fixture(scope="module")
def registration(
    mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One registration_svc for the module (SubmitJob validation needs nothing else);
    its queues are deleted afterwards."""
    tag = unique("jobsval")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        "BUS_RETRY_DELAYS_MS": "[200]",
    }
    process = ServiceProcess("registration_svc", env, tmp_path_factory.mktemp("logs")).start()
    yield process
    process.stop()
    delete_matching(f"^{re.escape(tag)}[._]")


@pytest.fixture
def submit(
    registration: ServiceProcess, token: Callable[..., str]
) -> Iterator[Callable[[str, dict[str, Any]], reg.Job]]:
    metadata = bearer(token("alice", "customer"))
    with grpc.insecure_channel(registration.target) as channel:
        stub = reg_grpc.RegistrationServiceStub(channel)

        def call(definition: str, parameters: dict[str, Any]) -> reg.Job:
            request = reg.SubmitJobRequest(
                definition=definition, parameters=struct_of(parameters), idempotency_key=uuid.uuid4().hex
            )
            return stub.SubmitJob(request, metadata=metadata, timeout=10).job

        yield call


@pytest.mark.parametrize(("definition", "parameters", "field"), HOSTILE, ids=repr)
def test_a_hostile_parameter_is_invalid_argument_naming_it(
    submit: Callable[[str, dict[str, Any]], reg.Job], definition: str, parameters: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        submit(definition, parameters)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert field in violated_fields(error.value)


def test_every_parameter_of_the_catalogue_has_a_hostile_case() -> None:
    covered = {(definition, field) for definition, _, field in HOSTILE}
    for job in load_catalogue().jobs:
        for spec in job.parameters:
            assert (job.name, f"parameters.{spec.name}") in covered, (job.name, spec.name)


def test_the_edges_of_each_range_are_accepted(submit: Callable[[str, dict[str, Any]], reg.Job]) -> None:
    assert submit("checksum", {"size": 268435456, "seed": 4294967295}).parameters["size"] == 268435456
    assert submit("sleep", {"seconds": 0, "steps": 1000}).definition == "sleep"
    assert submit("daily_report", {"date": "9999-12-30", "time_zone": "Pacific/Kiritimati"}).id
    assert submit("always_fail", {"message": "x" * 200}).id


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=300),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)
NAMES = sorted({spec.name for job in load_catalogue().jobs for spec in job.parameters} | {"x", ""})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    definition=st.sampled_from(sorted(job.name for job in load_catalogue().jobs)),
    parameters=st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=20), JSON_VALUE, max_size=4),
)
def test_any_parameters_are_accepted_or_invalid_argument_never_internal(
    submit: Callable[[str, dict[str, Any]], reg.Job], definition: str, parameters: dict[str, Any]
) -> None:
    try:
        job = submit(definition, parameters)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (parameters, error.details())
        assert all(f == "parameters" or f.startswith("parameters.") for f in violated_fields(error))
        return
    for value in job.parameters.values():  # what was accepted is finite and within ±2**53
        if isinstance(value, float):
            assert math.isfinite(value) and abs(value) <= MAX_SAFE_INT
