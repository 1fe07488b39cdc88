"""Jobs end to end through registration_svc and scheduler_svc: submit, run,
read back, idempotency, ownership, validation, admin access and watching."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from switchboard.registration.v1 import registration_service_pb2 as reg
from switchboard.scheduler.v1 import scheduler_service_pb2 as sch

from tests.integration.test_jobs_support import JobsMesh
from tests.support.processes import ServiceProcess


@pytest.fixture
def mesh(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> Iterator[JobsMesh]:
    jobs = JobsMesh.isolated(start_service, token, isolation)
    jobs.start_registration()
    jobs.start_scheduler()
    yield jobs
    jobs.close()


def _violations(exc: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return {v.field for v in bad_request.field_violations}


def test_submitted_job_succeeds_and_shows_its_result_through_registration(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    job = alice.submit("checksum", size=3_000_000, seed=7)
    assert job.status == reg.JOB_STATUS_REGISTERED

    done = alice.wait_status(job.id, reg.JOB_STATUS_SUCCEEDED, timeout_s=10)

    expected = hashlib.sha256()
    generator = random.Random(7)
    for chunk in (1 << 20, 1 << 20, 3_000_000 - 2 * (1 << 20)):
        expected.update(generator.randbytes(chunk))
    assert done.result["sha256"] == expected.hexdigest()
    assert done.attempt == 1 and done.progress == 100.0


def test_repeated_submit_with_one_idempotency_key_makes_one_job(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    first = alice.submit("noop", key="same-key")
    second = alice.submit("noop", key="same-key")
    assert first.id == second.id
    listed = alice.registration.ListJobs(reg.ListJobsRequest(), metadata=alice.metadata).jobs
    assert [j.id for j in listed] == [first.id]


def test_a_user_cannot_see_or_cancel_another_users_job(mesh: JobsMesh) -> None:
    alice, bob = mesh.users("alice"), mesh.users("bob")
    job = alice.submit("sleep", seconds=0.5)
    with pytest.raises(grpc.RpcError) as get_error:
        bob.get(job.id)
    assert get_error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as cancel_error:
        bob.registration.CancelJob(reg.CancelJobRequest(job_id=job.id), metadata=bob.metadata)
    assert cancel_error.value.code() == grpc.StatusCode.NOT_FOUND
    assert not bob.registration.ListJobs(reg.ListJobsRequest(), metadata=bob.metadata).jobs
    assert mesh.users("root", "admin").get(job.id).id == job.id


def test_a_non_admin_is_refused_on_every_admin_rpc(mesh: JobsMesh) -> None:
    alice = mesh.users("alice", "customer", "advisor")
    job_id = alice.submit("noop").id
    calls = [
        lambda: alice.admin.ListJobs(sch.ListJobsRequest(), metadata=alice.metadata),
        lambda: alice.admin.GetJob(sch.GetJobRequest(job_id=job_id), metadata=alice.metadata),
        lambda: alice.admin.CancelJob(sch.CancelJobRequest(job_id=job_id), metadata=alice.metadata),
        lambda: alice.admin.RetryJob(sch.RetryJobRequest(job_id=job_id), metadata=alice.metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_submit_with_bad_input_names_every_invalid_field(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    with pytest.raises(grpc.RpcError) as error:
        alice.registration.SubmitJob(
            reg.SubmitJobRequest(definition="", idempotency_key="k" * 129), metadata=alice.metadata
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error.value) == {"definition", "idempotency_key"}
    with pytest.raises(grpc.RpcError) as error:
        alice.submit("checksum", size=-1, colour="red")
    assert _violations(error.value) == {"parameters.size", "parameters.colour"}
    with pytest.raises(grpc.RpcError) as error:
        alice.registration.ListJobs(
            reg.ListJobsRequest(page_size=5000, page_token="junk"), metadata=alice.metadata
        )
    assert _violations(error.value) == {"page_size", "page_token"}


def test_list_definitions_serves_the_catalogue(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    definitions = alice.registration.ListJobDefinitions(
        reg.ListJobDefinitionsRequest(), metadata=alice.metadata
    ).job_definitions
    names = [d.name for d in definitions]
    assert names == sorted(names) and {"checksum", "sleep", "always_fail", "daily_report", "noop"} <= set(
        names
    )


def test_list_jobs_pages_newest_first(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    ids = [alice.submit("noop").id for _ in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = alice.registration.ListJobs(
            reg.ListJobsRequest(page_size=2, page_token=token), metadata=alice.metadata
        )
        seen += [j.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))


def test_watch_streams_progress_until_the_job_ends(mesh: JobsMesh) -> None:
    alice = mesh.users("alice")
    job = alice.submit("sleep", seconds=1.0, steps=4)
    updates = list(
        alice.registration.WatchJob(reg.WatchJobRequest(job_id=job.id), metadata=alice.metadata, timeout=20)
    )
    statuses = [u.job.status for u in updates]
    assert statuses[-1] == reg.JOB_STATUS_SUCCEEDED
    assert reg.JOB_STATUS_RUNNING in statuses
    sequences = [u.job.sequence for u in updates]
    assert sequences == sorted(sequences)


def test_admin_lists_jobs_by_status_and_owner(mesh: JobsMesh) -> None:
    alice, admin = mesh.users("alice"), mesh.users("root", "admin")
    done = alice.submit("noop")
    alice.wait_status(done.id, reg.JOB_STATUS_SUCCEEDED)
    admin.submit("sleep", seconds=0.2)
    page = admin.admin.ListJobs(
        sch.ListJobsRequest(status=sch.JOB_STATUS_SUCCEEDED, owner_id="alice"), metadata=admin.metadata
    )
    assert [j.id for j in page.jobs] == [done.id]
    assert page.jobs[0].attempts[0].worker_id
