"""The shared job catalogue: the shipped file loads, bad files are refused, and
submitted parameters are validated against a definition."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.jobs_catalogue import CatalogueError, load_catalogue, validate_parameters


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
        ("parameters.steps", "must be a number"),
    }
