"""Jobs under failure: a worker killed mid-job, cancellation of a running job,
a job that always fails, a future run_at across a scheduler restart, and the
admin's retry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.scheduler.v1 import scheduler_service_pb2 as sch

from mesh.processes import wait_until
from tests.integration.test_jobs_support import JobsMesh
from tests.support.processes import ServiceProcess


@pytest.fixture
def mesh(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> Iterator[JobsMesh]:
    jobs = JobsMesh.isolated(start_service, token, isolation)
    yield jobs
    jobs.close()


def test_a_worker_killed_mid_job_gets_the_job_delivered_again_and_it_finishes_once(mesh: JobsMesh) -> None:
    mesh.start_registration()
    mesh.start_scheduler(WORKER_THREADS="0")  # only the separate worker processes run jobs
    doomed = mesh.start_worker()
    alice, admin = mesh.users("alice"), mesh.users("root", "admin")
    job = alice.submit("sleep", seconds=2.0, steps=20)
    assert wait_until(lambda: admin.admin_known(job.id) and admin.admin_get(job.id).progress > 0, 20, 0.05)

    doomed.kill()
    mesh.start_worker()

    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=30)
    assert done.attempt == 2
    seen = admin.admin_get(job.id)
    assert [a.number for a in seen.attempts] == [1, 2]
    assert "lost" in seen.attempts[0].error and not seen.attempts[1].error
    time.sleep(1.0)  # a second completion would have landed by now
    assert alice.get(job.id).sequence == done.sequence


def test_cancelling_a_running_job_stops_it(mesh: JobsMesh) -> None:
    mesh.start_registration()
    mesh.start_scheduler()
    alice = mesh.users("alice")
    job = alice.submit("sleep", seconds=60, steps=600)
    alice.wait_status(job.id, reg.JOB_STATUS_RUNNING)

    answer = alice.registration.CancelJob(reg.CancelJobRequest(job_id=job.id), metadata=alice.metadata).job
    assert answer.status == reg.JOB_STATUS_CANCELLING

    cancelled = alice.wait_status(job.id, reg.JOB_STATUS_CANCELLED, timeout_s=10)
    assert cancelled.progress < 100
    admin_view = mesh.users("root", "admin").admin_get(job.id)
    assert admin_view.status == sch.JOB_STATUS_CANCELLED and admin_view.attempts[-1].end_time.seconds


def test_a_failing_job_ends_failed_after_its_retries(mesh: JobsMesh) -> None:
    mesh.start_registration()
    mesh.start_scheduler()
    alice = mesh.users("alice")
    job = alice.submit("always_fail", message="disk on fire")

    failed = alice.wait_status(job.id, reg.JOB_STATUS_FAILED, timeout_s=20)
    assert failed.attempt == failed.max_attempts == 3
    assert failed.error == "disk on fire"


def test_admin_retry_runs_a_failed_job_again_with_a_fresh_budget(mesh: JobsMesh) -> None:
    mesh.start_registration()
    mesh.start_scheduler()
    alice, admin = mesh.users("alice"), mesh.users("ops", "operator")
    job = alice.submit("always_fail")
    alice.wait_status(job.id, reg.JOB_STATUS_FAILED, timeout_s=20)

    retried = admin.admin.RetryJob(sch.RetryJobRequest(job_id=job.id), metadata=admin.metadata).job
    assert retried.status == sch.JOB_STATUS_QUEUED

    assert wait_until(lambda: alice.get(job.id).attempt == 6, 20, 0.1)
    assert alice.wait_status(job.id, reg.JOB_STATUS_FAILED).attempt == 6


def test_a_future_run_at_still_fires_after_the_scheduler_restarts(mesh: JobsMesh) -> None:
    mesh.start_registration()
    scheduler = mesh.start_scheduler()
    alice, admin = mesh.users("alice"), mesh.users("root", "admin")
    run_at = time.time() + 3
    job = alice.submit("noop", run_at_s=run_at)
    assert wait_until(lambda: admin.admin_known(job.id), 10, 0.1)
    assert admin.admin_get(job.id).status == sch.JOB_STATUS_REGISTERED

    scheduler.kill()
    assert wait_until(lambda: time.time() > run_at + 0.5, 10, 0.1)  # due while no scheduler runs
    assert alice.get(job.id).status == reg.JOB_STATUS_REGISTERED
    scheduler.start()

    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=20)
    assert done.run_at.ToNanoseconds() / 1e9 == pytest.approx(run_at, abs=0.01)
