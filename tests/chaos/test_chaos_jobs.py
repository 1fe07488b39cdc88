"""Work in progress dies with its process. scheduler_svc is killed (-9) while its
in-process worker runs a job: after the restart the job runs again and finishes
once. A submitter awaiting a daily_report's result (WatchJob through the gateway,
the reply travelling over the bus from scheduler_svc) gets it although the
responder restarted meanwhile."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc as agrpc
from switchboard.order.v1 import order_service_pb2_grpc as ogrpc
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.registration.v1 import registration_service_pb2_grpc as reg_grpc
from switchboard.scheduler.v1 import scheduler_service_pb2_grpc as sch_grpc

from mesh.client import bearer
from mesh.processes import wait_until
from tests.chaos.conftest import Mesh
from tests.chaos.test_chaos_replica_kill import order_request
from tests.integration.test_jobs_support import UserClient

pytestmark = pytest.mark.chaos


def user(mesh: Mesh, token: Callable[..., str], name: str, *roles: str) -> UserClient:
    """A caller going through the gateway."""
    channel = mesh.channel()
    return UserClient(
        reg_grpc.RegistrationServiceStub(channel),
        sch_grpc.SchedulerAdminServiceStub(channel),
        bearer(token(name, *(roles or ("customer",)))),
    )


def submit(client: UserClient, definition: str, **parameters: Any) -> reg.Job:
    values = struct_pb2.Struct()
    values.update(parameters)
    request = reg.SubmitJobRequest(definition=definition, parameters=values, idempotency_key=uuid.uuid4().hex)
    return client.registration.SubmitJob(request, metadata=client.metadata, timeout=10).job


def test_job_running_when_scheduler_is_killed_finishes_once_after_restart(
    mesh: Mesh, token: Callable[..., str], record_property: Callable[[str, object], None]
) -> None:
    alice, admin = user(mesh, token, "alice"), user(mesh, token, "root", "admin")
    job = submit(alice, "sleep", seconds=2.0, steps=20)
    assert wait_until(lambda: admin.admin_known(job.id) and admin.admin_get(job.id).progress > 0, 20, 0.05)

    scheduler = mesh.services["scheduler"]
    scheduler.kill()
    killed = time.monotonic()
    scheduler.start()

    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=40)
    recovery_s = time.monotonic() - killed
    assert done.attempt == 2
    seen = admin.admin_get(job.id)
    assert [a.number for a in seen.attempts] == [1, 2]
    assert not seen.attempts[1].error
    time.sleep(1.0)  # a second completion would have landed by now
    assert alice.get(job.id).sequence == done.sequence
    record_property("recovery_s", round(recovery_s, 2))


def test_awaited_daily_report_arrives_across_a_restart_of_the_responder(
    mesh: Mesh, token: Callable[..., str], record_property: Callable[[str, object], None]
) -> None:
    alice = user(mesh, token, "alice")
    orders = ogrpc.OrderServiceStub(mesh.channel())
    for i in range(3):
        orders.PlaceOrder(order_request(f"r-{i}"), metadata=alice.metadata, timeout=10)
    stats = agrpc.ActivityServiceStub(mesh.channel())
    today = dt.datetime.now(dt.UTC).date().isoformat()
    operator = bearer(token("ops", "operator"))
    assert wait_until(
        lambda: (
            stats.GetDailyStats(
                apb.GetDailyStatsRequest(date=today), metadata=operator, timeout=5
            ).stats.orders_placed
            == 3
        ),
        30,
        0.2,
    )
    scheduler = mesh.services["scheduler"]
    scheduler.kill()  # the responder is down when the request is made
    job = submit(alice, "daily_report", date=today)
    watch = alice.registration.WatchJob(
        reg.WatchJobRequest(job_id=job.id), metadata=alice.metadata, timeout=60
    )
    restarted = time.monotonic()
    scheduler.start()
    last = job
    try:
        for answer in watch:
            last = answer.job
            if last.status in (reg.JOB_STATUS_SUCCEEDED, reg.JOB_STATUS_FAILED, reg.JOB_STATUS_CANCELLED):
                break
    except grpc.RpcError as error:  # pragma: no cover - the message says what went wrong
        pytest.fail(f"watch ended with {error.code()}: {error.details()}")  # type: ignore[attr-defined]
    finally:
        watch.cancel()
    assert last.status == reg.JOB_STATUS_SUCCEEDED, last
    assert int(last.result["ordersPlaced"]) == 3  # the reply is the right one, not just any
    record_property("reply_after_restart_s", round(time.monotonic() - restarted, 2))
