"""The shared job catalogue: the shipped file loads, bad files are refused, and
submitted parameters are validated against a definition."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from mesh.jobs_catalogue import (
    MAX_SAFE_INT,
    CatalogueError,
    ParameterSpec,
    check_value,
    load_catalogue,
    parameters_from_struct,
    validate_parameters,
)


def test_the_shipped_catalogue_loads_with_every_job_kind() -> None:
    catalogue = load_catalogue()
    assert {"checksum", "sleep", "always_fail", "daily_report", "noop"} <= {j.name for j in catalogue.jobs}
    catalogue.require_kinds({"checksum", "sleep", "always_fail", "daily_report", "noop"})


def test_a_catalogue_with_an_unknown_key_or_bad_limits_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[jobs]]\nname = "x"\nkind = "noop"\ntimeout_s = 0\ncolour = "red"\n')
    with pytest.raises(CatalogueError, match=r"timeout_s|colour"):
        load_catalogue(bad)


def test_a_catalogue_with_duplicate_names_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "dup.toml"
    bad.write_text('[[jobs]]\nname = "x"\nkind = "noop"\ntimeout_s = 1\n' * 2)
    with pytest.raises(CatalogueError, match="duplicate"):
        load_catalogue(bad)


def test_a_missing_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "absent.toml")


def test_a_job_kind_without_implementation_is_refused() -> None:
    with pytest.raises(CatalogueError, match="no implementation"):
        load_catalogue().require_kinds({"noop"})


def test_parameters_get_defaults_and_ints_from_struct_floats() -> None:
    definition = load_catalogue().get("checksum")
    assert definition is not None
    values, violations = validate_parameters(definition, {"size": 1024.0})
    assert violations == []
    assert values == {"size": 1024, "seed": 0} and isinstance(values["size"], int)


def test_every_bad_parameter_is_named() -> None:
    definition = load_catalogue().get("checksum")
    assert definition is not None
    _, violations = validate_parameters(definition, {"size": 1.5, "seed": -1, "extra": True})
    assert {v.field for v in violations} == {"parameters.size", "parameters.seed", "parameters.extra"}


def test_a_missing_required_parameter_and_wrong_types_are_named() -> None:
    definition = load_catalogue().get("sleep")
    assert definition is not None
    _, violations = validate_parameters(definition, {"steps": "ten"})
    assert {(v.field, v.description) for v in violations} == {
        ("parameters.seconds", "is required"),
        ("parameters.steps", "must be a finite number"),
    }


def test_a_format_on_a_non_string_parameter_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "format.toml"
    bad.write_text(
        '[[jobs]]\nname = "x"\nkind = "noop"\ntimeout_s = 1\n'
        '[[jobs.parameters]]\nname = "n"\ntype = "int"\nformat = "date"\n'
    )
    with pytest.raises(CatalogueError, match="only a string has a format"):
        load_catalogue(bad)


def test_nan_and_infinity_from_a_struct_become_violations_not_errors() -> None:
    struct = struct_pb2.Struct()
    struct.update({"seconds": math.nan, "steps": math.inf, "extra": {"deep": [math.nan, None]}})
    parameters = parameters_from_struct(struct)
    assert math.isnan(parameters["seconds"]) and math.isnan(parameters["extra"]["deep"][0])
    definition = load_catalogue().get("sleep")
    assert definition is not None
    _, violations = validate_parameters(definition, parameters)
    assert {(v.field, v.description) for v in violations} == {
        ("parameters.seconds", "must be a finite number"),
        ("parameters.steps", "must be a finite number"),
        ("parameters.extra", "unknown parameter of sleep"),
    }


def test_an_int_parameter_without_bounds_stays_within_two_to_the_53() -> None:
    spec = ParameterSpec(name="n", type="int")
    assert check_value(spec, float(MAX_SAFE_INT)) == ""
    assert check_value(spec, 1e300) == f"must be between -{MAX_SAFE_INT} and {MAX_SAFE_INT}"


def test_daily_report_dates_and_zones_are_checked_like_activity_does() -> None:
    definition = load_catalogue().get("daily_report")
    assert definition is not None
    good, violations = validate_parameters(definition, {"date": "2024-02-29"})
    assert violations == [] and good == {"date": "2024-02-29", "time_zone": "UTC"}
    _, violations = validate_parameters(definition, {"date": "9999-12-31", "time_zone": "../x"})
    assert [v.field for v in violations] == ["parameters.date", "parameters.time_zone"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)


@given(
    name=st.sampled_from(sorted(job.name for job in load_catalogue().jobs)),
    values=st.dictionaries(
        st.sampled_from(["size", "seed", "seconds", "steps", "message", "date", "time_zone", "x"]), JSON
    ),
)
def test_validation_never_raises_and_accepts_only_what_fits(name: str, values: dict[str, Any]) -> None:
    definition = load_catalogue().get(name)
    assert definition is not None
    struct = struct_pb2.Struct()
    struct.update(values)
    normalized, violations = validate_parameters(definition, parameters_from_struct(struct))
    if not violations:
        specs = {spec.name: spec for spec in definition.parameters}
        assert set(normalized) <= set(specs)
        assert all(check_value(specs[key], value) == "" for key, value in normalized.items())
