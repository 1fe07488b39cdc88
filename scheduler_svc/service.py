"""The gRPC servicer of scheduler_svc (SchedulerAdminService): proto in, command out, proto back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from switchboard.scheduler.v1 import scheduler_service_pb2 as pb
from switchboard.scheduler.v1 import scheduler_service_pb2_grpc

from mesh.errors import Violations
from mesh.paging import decode_token, encode_token, fingerprint, page_size
from mesh.protos import set_timestamp
from scheduler_svc import handlers
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.handlers import Scheduling
from scheduler_svc.model import JobStatus, SchedulerJob

MAX_JOB_ID = 64
MAX_OWNER_ID = 128
MAX_DEFINITION_NAME = 64


class SchedulerAdminService(scheduler_service_pb2_grpc.SchedulerAdminServiceServicer):
    """Admins and operators see and steer every job (roles enforced from the proto)."""

    def __init__(self, deps: Scheduling, config: SchedulerConfig) -> None:
        self.deps = deps
        self.config = config

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        violations = Violations()
        size = page_size(
            request.page_size, self.config.list_default_page_size, self.config.list_max_page_size, violations
        )
        violations.check(request.status in JobStatus._value2member_map_, "status", "is not a JobStatus")
        violations.text(request.owner_id, "owner_id", max_len=MAX_OWNER_ID, required=False)
        violations.text(request.definition, "definition", max_len=MAX_DEFINITION_NAME, required=False)
        request_fingerprint = fingerprint("admin-jobs", request.status, request.owner_id, request.definition)
        cursor = decode_token(request.page_token, request_fingerprint, violations)
        after = None
        if cursor is not None:
            create_time, job_id = cursor.get("t"), cursor.get("i")
            if isinstance(create_time, int | float) and isinstance(job_id, str):
                after = (float(create_time), job_id)
            else:
                violations.add("page_token", "is not a token from a previous response")
        violations.raise_if_any()
        filters: dict[str, Any] = {}
        if request.status:
            filters["status"] = int(request.status)
        if request.owner_id:
            filters["owner_id"] = request.owner_id
        if request.definition:
            filters["definition"] = request.definition
        jobs = await asyncio.to_thread(self.deps.jobs.list, filters, size + 1, after)
        response = pb.ListJobsResponse(jobs=[to_proto(job) for job in jobs[:size]])
        if len(jobs) > size:
            last = jobs[size - 1]
            response.next_page_token = encode_token(
                {"t": last.create_time, "i": last.id}, request_fingerprint
            )
        return response

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        _validate_job_id(request.job_id)
        job = await asyncio.to_thread(handlers.get_job, request.job_id, self.deps)
        return pb.GetJobResponse(job=to_proto(job))

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        _validate_job_id(request.job_id)
        job = await asyncio.to_thread(handlers.cancel_job, request.job_id, self.deps)
        return pb.CancelJobResponse(job=to_proto(job))

    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobResponse:
        _validate_job_id(request.job_id)
        job = await asyncio.to_thread(handlers.retry_job, request.job_id, self.deps)
        return pb.RetryJobResponse(job=to_proto(job))


def _validate_job_id(job_id: str) -> None:
    violations = Violations()
    if violations.text(job_id, "job_id", max_len=MAX_JOB_ID):
        try:
            uuid.UUID(job_id)
        except ValueError:
            violations.add("job_id", "must be a job id (UUID)")
    violations.raise_if_any()


def _set_time(field: Any, epoch_s: float | None) -> None:
    set_timestamp(field, epoch_s)


def to_proto(job: SchedulerJob) -> pb.Job:
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
        worker_id=job.worker_id,
        cancel_requested=job.cancel_requested,
    )
    message.parameters.update(job.parameters)
    if job.result is not None:
        message.result.update(job.result)
    message.timeout.FromNanoseconds(int(job.timeout_s * 1e9))
    for attempt in job.attempts:
        entry = pb.Attempt(number=attempt.number, worker_id=attempt.worker_id, error=attempt.error)
        _set_time(entry.start_time, attempt.start_time)
        _set_time(entry.end_time, attempt.end_time)
        message.attempts.append(entry)
    for name in ("run_at", "queue_time", "start_time", "end_time", "create_time", "update_time"):
        _set_time(getattr(message, name), getattr(job, name))
    return message
