"""The gRPC servicer of registration_svc: proto in, command out, proto back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf import json_format
from switchboard.registration.v1 import registration_service_pb2 as pb
from switchboard.registration.v1 import registration_service_pb2_grpc

from mesh.auth import current_principal
from mesh.batching import GroupCommit
from mesh.errors import FieldViolation, OutOfRange, Violations
from mesh.jobs_catalogue import JobDefinition, parameters_from_struct
from mesh.paging import decode_token, encode_token, fingerprint, page_size
from mesh.protos import set_timestamp
from mesh.streams import Delivery, in_order, send_headers
from registration_svc import handlers
from registration_svc.config import RegistrationConfig
from registration_svc.handlers import CancelJob, Registration, SubmitJob
from registration_svc.model import Job, JobStatus, StatusChange

MAX_DEFINITION_NAME = 64
MAX_IDEMPOTENCY_KEY = 128
MAX_PARAMETER_KEYS = 64
MAX_PARAMETER_BYTES = 16 * 1024
MAX_JOB_ID = 64

_PARAMETER_TYPES = {
    "string": pb.PARAMETER_TYPE_STRING,
    "int": pb.PARAMETER_TYPE_INT,
    "float": pb.PARAMETER_TYPE_FLOAT,
    "bool": pb.PARAMETER_TYPE_BOOL,
}


class RegistrationService(registration_service_pb2_grpc.RegistrationServiceServicer):
    """Job submission and the users' read model of their jobs."""

    def __init__(
        self, deps: Registration, config: RegistrationConfig, submits: GroupCommit[Job, Job]
    ) -> None:
        self.deps = deps
        self.config = config
        self.submits = submits

    async def ListJobDefinitions(
        self, request: pb.ListJobDefinitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobDefinitionsResponse:
        violations = Violations()
        definitions = self.deps.catalogue.sorted_by_name()
        size = page_size(request.page_size, len(definitions), 1000, violations)
        cursor = decode_token(request.page_token, fingerprint("definitions"), violations)
        violations.raise_if_any()
        after = str(cursor.get("name", "")) if cursor else ""
        page = [d for d in definitions if d.name > after][:size]
        response = pb.ListJobDefinitionsResponse(job_definitions=[_definition(d) for d in page])
        if page and page[-1].name != definitions[-1].name:
            response.next_page_token = encode_token({"name": page[-1].name}, fingerprint("definitions"))
        return response

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        violations = Violations()
        violations.text(request.definition, "definition", max_len=MAX_DEFINITION_NAME)
        violations.text(request.idempotency_key, "idempotency_key", max_len=MAX_IDEMPOTENCY_KEY)
        violations.check(
            len(request.parameters.fields) <= MAX_PARAMETER_KEYS,
            "parameters",
            f"must have at most {MAX_PARAMETER_KEYS} keys",
        )
        violations.check(
            request.parameters.ByteSize() <= MAX_PARAMETER_BYTES,
            "parameters",
            f"must be at most {MAX_PARAMETER_BYTES} bytes serialized",
        )
        run_at = None
        now = time.time()
        if request.HasField("run_at"):
            # A Timestamp outside 0001..9999 or with bad nanos cannot be converted: refuse it first.
            valid = violations.check(
                -62135596800 <= request.run_at.seconds <= 253402300799
                and 0 <= request.run_at.nanos <= 999_999_999,
                "run_at",
                "must be a valid timestamp (years 0001 to 9999, nanos 0 to 999999999)",
            )
            run_at = request.run_at.seconds + request.run_at.nanos / 1e9 if valid else None
            if run_at is not None:
                violations.check(
                    run_at <= now + self.config.max_run_ahead_s,
                    "run_at",
                    f"must be at most {self.config.max_run_ahead_s / 86400:g} days ahead",
                )
                if run_at <= now:
                    run_at = None  # past means at once
        violations.raise_if_any()
        command = SubmitJob(
            owner_id=current_principal().user_id,
            definition=request.definition,
            # never json_format here: it raises on NaN/Infinity (INTERNAL); new_job refuses them
            parameters=parameters_from_struct(request.parameters),
            idempotency_key=request.idempotency_key,
            run_at=run_at,
        )
        job = await self.submits.call(handlers.new_job(command, self.deps.catalogue))
        return pb.SubmitJobResponse(job=to_proto(job))

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        _validate_job_id(request.job_id)
        job = await asyncio.to_thread(handlers.get_job, request.job_id, current_principal(), self.deps)
        return pb.GetJobResponse(job=to_proto(job))

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        violations = Violations()
        size = page_size(
            request.page_size, self.config.list_default_page_size, self.config.list_max_page_size, violations
        )
        violations.check(request.status in JobStatus._value2member_map_, "status", "is not a JobStatus")
        owner = current_principal().user_id
        request_fingerprint = fingerprint("jobs", owner, request.status)
        cursor = decode_token(request.page_token, request_fingerprint, violations)
        after = _cursor(cursor, violations)
        violations.raise_if_any()
        status = JobStatus(request.status) if request.status else None
        jobs = await asyncio.to_thread(self.deps.jobs.list_for_owner, owner, status, size + 1, after)
        response = pb.ListJobsResponse(jobs=[to_proto(job) for job in jobs[:size]])
        if len(jobs) > size:
            last = jobs[size - 1]
            response.next_page_token = encode_token(
                {"t": last.create_time, "i": last.id}, request_fingerprint
            )
        return response

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        _validate_job_id(request.job_id)
        command = CancelJob(job_id=request.job_id, principal=current_principal())
        job = await asyncio.to_thread(handlers.cancel_job, command, self.deps)
        return pb.CancelJobResponse(job=to_proto(job))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJobResponse]:
        """Polls the read model (works across replicas without a change feed); each
        status change is replayed from `job_changes`, in order, so changes quicker
        than the poll are not folded into one. Ends after a terminal status."""
        violations = Violations()
        if violations.text(request.job_id, "job_id", max_len=MAX_JOB_ID):
            _check_uuid(request.job_id, violations)
        violations.check(request.after_sequence >= 0, "after_sequence", "must not be negative")
        violations.raise_if_any()
        principal = current_principal()
        job = await asyncio.to_thread(handlers.get_job, request.job_id, principal, self.deps)
        if request.after_sequence > job.sequence:
            raise OutOfRange(
                [FieldViolation("after_sequence", f"is beyond the job's sequence {job.sequence}")]
            )
        await send_headers(context)
        delivered, last = request.after_sequence or job.sequence, None
        if not request.after_sequence:
            yield pb.WatchJobResponse(job=to_proto(job))
            last = _shown(job)
        while True:
            if job.sequence > delivered:
                for change in await asyncio.to_thread(self._changes, job, delivered):
                    yield pb.WatchJobResponse(
                        job=to_proto(change.value), coalesced_from_sequence=change.coalesced_from
                    )
                    delivered, last = change.number, _shown(change.value)
            if _shown(job) != last:  # a change of ours (a cancel asked) keeps the sequence
                yield pb.WatchJobResponse(job=to_proto(job))
                last = _shown(job)
            if job.status.terminal:
                return
            await asyncio.sleep(self.config.watch_poll_interval_s)
            job = await asyncio.to_thread(handlers.get_job, request.job_id, principal, self.deps)

    def _changes(self, job: Job, delivered: int) -> list[Delivery[Job]]:
        """The job as of each recorded change after `delivered`, in order; the job as
        it is now stands for its latest sequence (and, marked, for any not recorded)."""
        recorded = self.deps.jobs.changes_after(job.id, delivered, job.sequence - 1)
        found = [(change.sequence, _as_of(job, change, when)) for change, when in recorded]
        return list(in_order(delivered, [*found, (job.sequence, job)]))


def _shown(job: Job) -> tuple[object, ...]:
    return (job.sequence, job.status, job.progress, job.cancel_requested)


def _as_of(job: Job, change: StatusChange, when: float) -> Job:
    """The job as the scheduler reported it at `change` (applied at `when`)."""
    return dataclasses.replace(
        job,
        sequence=change.sequence,
        status=change.status,
        progress=change.progress,
        result=change.result,
        error=change.error,
        attempt=change.attempt,
        max_attempts=change.max_attempts or job.max_attempts,
        update_time=when,
        cancel_requested=False,
    )


def _validate_job_id(job_id: str) -> None:
    violations = Violations()
    if violations.text(job_id, "job_id", max_len=MAX_JOB_ID):
        _check_uuid(job_id, violations)
    violations.raise_if_any()


def _check_uuid(job_id: str, violations: Violations) -> None:
    try:
        uuid.UUID(job_id)
    except ValueError:
        violations.add("job_id", "must be a job id (UUID)")


def _cursor(cursor: dict[str, object] | None, violations: Violations) -> tuple[float, str] | None:
    if cursor is None:
        return None
    create_time, job_id = cursor.get("t"), cursor.get("i")
    if not isinstance(create_time, int | float) or not isinstance(job_id, str):
        violations.add("page_token", "is not a token from a previous response")
        return None
    return float(create_time), job_id


def _definition(definition: JobDefinition) -> pb.JobDefinition:
    message = pb.JobDefinition(
        name=definition.name, description=definition.description, max_retries=definition.max_retries
    )
    message.timeout.FromNanoseconds(int(definition.timeout_s * 1e9))
    for spec in definition.parameters:
        parameter = pb.ParameterSpec(
            name=spec.name,
            type=_PARAMETER_TYPES[spec.type],
            required=spec.required,
            max_length=spec.max_length,
            description=spec.description,
        )
        if spec.min is not None:
            parameter.min = spec.min
        if spec.max is not None:
            parameter.max = spec.max
        if spec.default is not None:
            json_format.Parse(json.dumps(spec.default), parameter.default_value)
        message.parameters.append(parameter)
    return message


def to_proto(job: Job) -> pb.Job:
    message = pb.Job(
        id=job.id,
        owner_id=job.owner_id,
        definition=job.definition,
        status=int(job.status),  # type: ignore[arg-type]
        progress=job.progress,
        error=job.error,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        sequence=job.sequence,
        idempotency_key=job.idempotency_key,
    )
    message.parameters.update(job.parameters)
    if job.result is not None:
        message.result.update(job.result)
    set_timestamp(message.run_at, job.run_at)
    set_timestamp(message.create_time, job.create_time)
    set_timestamp(message.update_time, job.update_time)
    return message
