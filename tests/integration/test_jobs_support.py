"""Shared set-up of the job services' integration tests: registration_svc and
scheduler_svc (each with its own database) on one isolated exchange."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pika
from google.protobuf import struct_pb2
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.registration.v1 import registration_service_pb2_grpc as reg_grpc
from switchboard.scheduler.v1 import scheduler_service_pb2 as sch
from switchboard.scheduler.v1 import scheduler_service_pb2_grpc as sch_grpc

from mesh.client import bearer
from mesh.processes import wait_until
from tests.support.processes import RABBITMQ_URL, ServiceProcess

# short intervals so failure scenarios resolve in seconds
FAST_SCHEDULER = {
    "HEARTBEAT_INTERVAL_S": "0.2",
    "WORKER_LEASE_S": "1.5",
    "RETRY_DELAY_S": "0.2",
    "DISPATCH_INTERVAL_S": "0.2",
    "PROGRESS_MIN_INTERVAL_S": "0",
    "OUTBOX_SWEEP_INTERVAL_S": "0.5",
}
# one retry delay: half the quorum queues per consumer (the shared broker pays for each)
LEAN_BUS = {"BUS_RETRY_DELAYS_MS": "[200]"}
CONSUMER_QUEUES = (
    "registration.job-status",
    "scheduler.job-registered",
    "scheduler.job-cancel",
    "scheduler.work",
    "activity",
)


@dataclass
class JobsMesh:
    """The two job services under test and stubs to call them as anyone."""

    start: Callable[..., ServiceProcess]
    token: Callable[..., str]
    databases: dict[str, str]
    isolation: dict[str, str]
    registration: ServiceProcess | None = None
    scheduler: ServiceProcess | None = None
    activity: ServiceProcess | None = None
    channels: list[grpc.Channel] = field(default_factory=list)
    processes: list[ServiceProcess] = field(default_factory=list)

    @classmethod
    def isolated(
        cls, start: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
    ) -> JobsMesh:
        """A mesh whose two services have databases of this test only."""
        base = isolation["MONGO_DB"]
        return cls(start, token, {"registration": f"{base}_reg", "scheduler": f"{base}_sch"}, isolation)

    def _start(self, module: str, **env: Any) -> ServiceProcess:
        process = self.start(module, **env)
        self.processes.append(process)
        return process

    def start_registration(self, **extra: str) -> ServiceProcess:
        self.registration = self._start(
            "registration_svc", MONGO_DB=self.databases["registration"], **LEAN_BUS, **extra
        )
        return self.registration

    def start_scheduler(self, **extra: str) -> ServiceProcess:
        env = {**FAST_SCHEDULER, **LEAN_BUS, "MONGO_DB": self.databases["scheduler"], **extra}
        self.scheduler = self._start("scheduler_svc", **env)
        return self.scheduler

    def start_activity(self) -> ServiceProcess:
        """activity_svc on the same exchange (the daily_report job asks it for figures)."""
        self.activity = self._start("activity_svc", MONGO_DB=self.databases["activity"], **LEAN_BUS)
        return self.activity

    def start_worker(self) -> ServiceProcess:
        env = {**FAST_SCHEDULER, **LEAN_BUS, "MONGO_DB": self.databases["scheduler"], "WORKER_THREADS": "1"}
        return self._start("scheduler_svc.worker", wait_serving=False, **env)

    def users(self, user: str, *roles: str) -> UserClient:
        assert self.registration is not None and self.scheduler is not None
        reg_channel = grpc.insecure_channel(self.registration.target)
        sch_channel = grpc.insecure_channel(self.scheduler.target)
        self.channels += [reg_channel, sch_channel]
        return UserClient(
            reg_grpc.RegistrationServiceStub(reg_channel),
            sch_grpc.SchedulerAdminServiceStub(sch_channel),
            bearer(self.token(user, *(roles or ("customer",)))),
        )

    def close(self) -> None:
        """Close the channels, stop the processes, then remove the test's queues."""
        for channel in self.channels:
            channel.close()
        for process in self.processes:
            process.stop()
        self.delete_queues()

    def delete_queues(self) -> None:
        """Remove this test's queues and exchange from the shared broker (call after
        the processes stopped; best effort)."""
        prefix = self.isolation["QUEUE_PREFIX"]
        try:
            connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        except pika.exceptions.AMQPError:
            return
        try:
            channel = connection.channel()
            for name in CONSUMER_QUEUES:
                for suffix in ("", ".retry.200", ".dead"):
                    channel.queue_delete(prefix + name + suffix)
            channel.exchange_delete(self.isolation["EVENTS_EXCHANGE"])
        except pika.exceptions.AMQPError:
            pass
        finally:
            if connection.is_open:
                connection.close()


@dataclass
class UserClient:
    """One caller's view: registration RPCs and the admin RPCs with its token."""

    registration: reg_grpc.RegistrationServiceStub
    admin: sch_grpc.SchedulerAdminServiceStub
    metadata: tuple[tuple[str, str], ...]

    def submit(
        self, definition: str, key: str = "", run_at_s: float | None = None, **parameters: Any
    ) -> reg.Job:
        request = reg.SubmitJobRequest(
            definition=definition,
            parameters=_struct(parameters),
            idempotency_key=key or uuid.uuid4().hex,
        )
        if run_at_s is not None:
            request.run_at.FromNanoseconds(int(run_at_s * 1e9))
        return self.registration.SubmitJob(request, metadata=self.metadata, timeout=10).job

    def get(self, job_id: str) -> reg.Job:
        return self.registration.GetJob(
            reg.GetJobRequest(job_id=job_id), metadata=self.metadata, timeout=10
        ).job

    def admin_get(self, job_id: str) -> sch.Job:
        return self.admin.GetJob(sch.GetJobRequest(job_id=job_id), metadata=self.metadata, timeout=10).job

    def admin_known(self, job_id: str) -> bool:
        try:
            self.admin_get(job_id)
            return True
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise

    def wait_status(self, job_id: str, status: int, timeout_s: float = 20) -> reg.Job:
        assert wait_until(lambda: self.get(job_id).status == status, timeout_s, 0.1), (
            f"job never reached {reg.JobStatus.Name(status)}: {self.get(job_id)}"
        )
        return self.get(job_id)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message
