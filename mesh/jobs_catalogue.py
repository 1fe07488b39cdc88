"""The job catalogue shared by registration_svc and scheduler_svc: one TOML file
of job definitions (name, parameters, timeout, retries), loaded and validated at
start-up, and the validation of submitted parameters against a definition.

The file is the single source of truth: registration validates SubmitJob with
it and serves ListJobDefinitions from it; the scheduler takes timeouts and
retries from it and refuses to start on an invalid file."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from google.protobuf import struct_pb2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mesh.dates import date_problem, time_zone_problem
from mesh.errors import FieldViolation

DEFAULT_CATALOGUE_FILE = Path(__file__).resolve().parents[1] / "scheduler_svc" / "catalogue.toml"
MAX_PARAMETERS = 64
MAX_STRING_PARAMETER = 16 * 1024

# An INT travels as a Struct number (a double): beyond 2**53 it is no longer exact,
# and MongoDB stores at most 64-bit integers, so this bounds every INT parameter.
MAX_SAFE_INT = 2**53

ParameterKind = Literal["string", "int", "float", "bool"]
# What a string parameter must spell, checked at submission like its type: a job
# never starts only to fail on a value it could have refused (daily_report's date).
StringFormat = Literal["", "date", "time_zone"]


class CatalogueError(ValueError):
    """The catalogue file is missing, unreadable or invalid."""


class ParameterSpec(BaseModel):
    """One parameter of a job definition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    type: ParameterKind
    required: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int = Field(0, ge=0, le=MAX_STRING_PARAMETER)
    format: StringFormat = ""
    description: str = ""
    default: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"parameter {self.name}: min > max")
        if self.format and self.type != "string":
            raise ValueError(f"parameter {self.name}: only a string has a format")
        if self.required and self.default is not None:
            raise ValueError(f"parameter {self.name}: a required parameter has no default")
        if self.default is not None and check_value(self, self.default):
            raise ValueError(f"parameter {self.name}: default {self.default!r} is invalid")
        return self


class JobDefinition(BaseModel):
    """One entry of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    kind: str = Field(min_length=1, max_length=64)
    description: str = ""
    timeout_s: float = Field(gt=0, le=24 * 3600)
    max_retries: int = Field(0, ge=0, le=100)
    parameters: tuple[ParameterSpec, ...] = ()

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    @model_validator(mode="after")
    def _unique_parameters(self) -> JobDefinition:
        names = [p.name for p in self.parameters]
        if len(names) != len(set(names)):
            raise ValueError(f"job {self.name}: duplicate parameter names")
        if len(names) > MAX_PARAMETERS:
            raise ValueError(f"job {self.name}: more than {MAX_PARAMETERS} parameters")
        return self


class Catalogue(BaseModel):
    """Every job definition, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: tuple[JobDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalogue:
        names = [j.name for j in self.jobs]
        if len(names) != len(set(names)):
            raise ValueError("duplicate job names")
        return self

    def get(self, name: str) -> JobDefinition | None:
        return next((job for job in self.jobs if job.name == name), None)

    def sorted_by_name(self) -> list[JobDefinition]:
        return sorted(self.jobs, key=lambda job: job.name)

    def require_kinds(self, known: set[str]) -> None:
        """Start-up check of the runner: every definition has an implementation."""
        unknown = sorted({job.kind for job in self.jobs} - known)
        if unknown:
            raise CatalogueError(f"no implementation for job kind(s) {unknown}")


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE_FILE) -> Catalogue:
    """Read and validate the catalogue; CatalogueError names what is wrong."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"cannot read job catalogue {path}: {exc}") from exc
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"invalid job catalogue {path}: {exc}") from exc


def check_value(spec: ParameterSpec, value: Any) -> str:
    """Why `value` does not fit `spec` ('' when it does). Struct numbers arrive as
    floats, so an INT is any finite float without a fraction, within ±2**53."""
    if spec.type == "bool":
        return "" if isinstance(value, bool) else "must be a boolean"
    if spec.type == "string":
        return _check_string(spec, value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a finite number"
    if spec.type == "int" and float(value) != int(value):
        return "must be an integer"
    if spec.type == "int" and abs(value) > MAX_SAFE_INT:
        return f"must be between -{MAX_SAFE_INT} and {MAX_SAFE_INT}"
    if spec.min is not None and value < spec.min:
        return f"must be at least {_number(spec.min)}"
    if spec.max is not None and value > spec.max:
        return f"must be at most {_number(spec.max)}"
    return ""


def _check_string(spec: ParameterSpec, value: Any) -> str:
    if not isinstance(value, str):
        return "must be a string"
    limit = spec.max_length or MAX_STRING_PARAMETER
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if spec.format == "date":
        return date_problem(value)
    if spec.format == "time_zone":
        return time_zone_problem(value, limit)
    return ""


def parameters_from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain Python values, whatever it holds. Unlike
    `json_format.MessageToDict`, which raises on NaN and ±Infinity, this never
    fails: such a number reaches `validate_parameters` and becomes a violation."""
    return {key: _plain(value) for key, value in struct.fields.items()}


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return parameters_from_struct(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    return None  # null_value, or no kind set


def validate_parameters(
    definition: JobDefinition, values: Mapping[str, Any], field_path: str = "parameters"
) -> tuple[dict[str, Any], list[FieldViolation]]:
    """The parameters with defaults filled in and INTs as int, plus every violation
    (unknown keys, missing required ones, wrong types or ranges)."""
    violations: list[FieldViolation] = []
    specs = {spec.name: spec for spec in definition.parameters}
    for key in values:
        if key not in specs:
            violations.append(
                FieldViolation(f"{field_path}.{key}", f"unknown parameter of {definition.name}")
            )
    normalized: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in values or values[name] is None:
            if spec.required:
                violations.append(FieldViolation(f"{field_path}.{name}", "is required"))
            elif spec.default is not None:
                normalized[name] = spec.default
            continue
        problem = check_value(spec, values[name])
        if problem:
            violations.append(FieldViolation(f"{field_path}.{name}", problem))
            continue
        normalized[name] = int(values[name]) if spec.type == "int" else values[name]
    return normalized, violations


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


class JobStatus(IntEnum):
    """A job's status, the same numbers in registration.v1, scheduler.v1 and the events."""

    UNSPECIFIED = 0
    REGISTERED = 1
    QUEUED = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    CANCELLED = 6
    CANCELLING = 7

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
