"""The job implementations named by the catalogue's `kind`: small real workloads.
Each gets a JobContext for its parameters, progress reports and cooperative
checks (cancellation, timeout) and returns its result as a JSON-like dict."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from switchboard.activity.v1 import activity_service_pb2, activity_service_pb2_grpc

from mesh.auth import mint_token
from mesh.client import bearer, shared_channel
from scheduler_svc.config import SchedulerConfig

CHUNK_BYTES = 1 << 20


class JobCancelled(Exception):
    """The job stopped because cancellation was asked."""


class JobTimedOut(Exception):
    """The attempt ran past the definition's timeout."""


class JobError(Exception):
    """The job failed (its message becomes the attempt's error). A `permanent`
    failure would fail the same way again: the job fails at once, never retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# A downstream answer that another attempt cannot change (the request itself is
# wrong, or not allowed); anything else (UNAVAILABLE, DEADLINE_EXCEEDED,
# RESOURCE_EXHAUSTED, ABORTED, INTERNAL…) may pass and is retried.
PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
# Exceptions a job's code raises deterministically for the same parameters
# (a bad value, a missing key): retrying runs the same code on the same input.
DETERMINISTIC_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError, ArithmeticError)


def is_permanent(error: Exception) -> bool:
    """Whether a failed attempt's error rules out every further attempt."""
    if isinstance(error, JobError):
        return error.permanent
    return isinstance(error, DETERMINISTIC_ERRORS)


@dataclass
class JobContext:
    """What a running job sees: its parameters, a progress callback and the
    flags it must check at each step (`checkpoint()`)."""

    parameters: dict[str, Any]
    deadline: float  # time.monotonic() value
    config: SchedulerConfig
    on_progress: Callable[[float], None] = lambda _percent: None
    cancel: threading.Event = field(default_factory=threading.Event)

    def checkpoint(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled("cancelled")
        if time.monotonic() > self.deadline:
            raise JobTimedOut("timed out")

    def progress(self, percent: float) -> None:
        self.checkpoint()
        self.on_progress(percent)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once on cancellation; then checkpoint."""
        self.cancel.wait(max(0.0, min(seconds, self.deadline - time.monotonic())))
        self.checkpoint()


def noop(ctx: JobContext) -> dict[str, Any]:
    return {}


def checksum(ctx: JobContext) -> dict[str, Any]:
    """SHA-256 of `size` seeded pseudo-random bytes, 1 MiB at a time."""
    size, seed = int(ctx.parameters["size"]), int(ctx.parameters.get("seed", 0))
    generator = random.Random(seed)
    digest = hashlib.sha256()
    done = 0
    while done < size:
        chunk = min(CHUNK_BYTES, size - done)
        digest.update(generator.randbytes(chunk))
        done += chunk
        ctx.progress(100.0 * done / size)
    return {"sha256": digest.hexdigest(), "size": size, "seed": seed}


def sleep(ctx: JobContext) -> dict[str, Any]:
    """Sleep `seconds` in `steps` steps, reporting progress after each."""
    seconds, steps = float(ctx.parameters["seconds"]), int(ctx.parameters.get("steps", 10))
    for step in range(1, steps + 1):
        ctx.sleep(seconds / steps)
        ctx.progress(100.0 * step / steps)
    return {"slept_s": seconds, "steps": steps}


def always_fail(ctx: JobContext) -> dict[str, Any]:
    raise JobError(str(ctx.parameters.get("message", "this job always fails")))


def daily_report(ctx: JobContext) -> dict[str, Any]:
    """One day's statistics from activity_svc, called as a service (ROLE_SERVICE)."""
    config = ctx.config
    token = mint_token(
        config.jwt_private_key_file.read_bytes(),
        "scheduler_svc",
        ["service"],
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        ttl_s=config.service_token_ttl_s,
    )
    timeout = max(0.1, min(config.activity_deadline_s, ctx.deadline - time.monotonic()))
    request = activity_service_pb2.GetDailyStatsRequest(
        date=str(ctx.parameters["date"]), time_zone=str(ctx.parameters.get("time_zone", "UTC"))
    )
    stub = activity_service_pb2_grpc.ActivityServiceStub(shared_channel(config.activity_target))
    try:
        response = stub.GetDailyStats(request, timeout=timeout, metadata=bearer(token))
    except grpc.RpcError as exc:
        code = exc.code()
        raise JobError(
            f"activity_svc GetDailyStats: {code.name}: {exc.details()}", permanent=code in PERMANENT_CODES
        ) from exc
    ctx.progress(100.0)
    return json_format.MessageToDict(response.stats)


KINDS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "noop": noop,
    "checksum": checksum,
    "sleep": sleep,
    "always_fail": always_fail,
    "daily_report": daily_report,
}
